"""Keystile's admin half: the management API, the console and the command line.

It builds on ``sidecar``; ``sidecar`` never imports from here.
"""
