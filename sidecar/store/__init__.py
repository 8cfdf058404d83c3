"""The Redis store: key names, the records' encoding, the reads the proxy needs, the admin
writes, durability waits, server checks, the epoch, retention, and whole-store check, export
and import.
"""
