"""The Redis store: key names (``keys``), what a change records (``changes``), the shared
connection and transaction (``base``), the proxy's reads behind ``protocol.CredentialStore``
(``redis_store``), the admin parts (``tokens``, ``people``, ``listing``, put together by
``management.AdminStore``), durability waits, server checks, the epoch, retention, and
whole-store check, export and import; the leak response's write (``leaks``).
"""
