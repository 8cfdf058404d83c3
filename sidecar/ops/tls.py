"""TLS on a listener: its certificate and key, checked at start and reloaded on SIGHUP.

``ListenerTls.context`` is the one ``ssl.SSLContext`` a listener's sockets are
served with, for their whole life. Its SNI callback, which OpenSSL calls in
every handshake (also when the client sends no server name, as for an IP
address), hands the handshake to the ``current`` context. ``reload`` builds a
new context from the files; only once it loaded cleanly does it become
``current``, so new connections get the new chain, open ones keep theirs,
the listening sockets are never closed, and a bad new pair leaves the old one
in place (loading into the live context instead could leave it half replaced:
a new certificate with no key).

Defaults are ``ssl.create_default_context(Purpose.CLIENT_AUTH)``'s with TLS 1.2
as the oldest version (RFC 8996 retires 1.0 and 1.1).
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

from sidecar.config import Config, ListenerConfig

log = logging.getLogger("keystile.tls")


class TlsError(Exception):
    """A certificate or key cannot be used; the message names the key, one line."""


def server_context(cert: Path, key: Path, section: str) -> ssl.SSLContext:
    """A server context for ``section``'s ``tls_cert`` and ``tls_key``; TlsError naming the key."""
    _readable(cert, f"{section}.tls_cert", "CERTIFICATE-----")
    _readable(key, f"{section}.tls_key", "PRIVATE KEY-----")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key, password=_no_password)
    except (ssl.SSLError, _Encrypted) as exc:
        raise TlsError(f"{section}.tls_key: {_why(exc, section)}") from None
    return context


def _readable(path: Path, key: str, marker: str) -> None:
    """The file can be read and holds a PEM block of its kind, so the error can name it."""
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise TlsError(f"{key}: cannot read {str(path)!r}: {exc.strerror}") from None
    if marker not in text:
        kind = "certificate" if key.endswith("cert") else "private key"
        raise TlsError(f"{key}: {str(path)!r} holds no PEM {kind}")


class _Encrypted(Exception):
    pass


def _no_password() -> str:
    # Without a callback OpenSSL would ask for the pass phrase on the terminal.
    raise _Encrypted


def _why(exc: Exception, section: str) -> str:
    if isinstance(exc, _Encrypted):
        return "the private key is encrypted; give it unencrypted (readable by Keystile only)"
    if getattr(exc, "reason", None) == "KEY_VALUES_MISMATCH":
        return f"the private key does not match the certificate in {section}.tls_cert"
    return f"the certificate and key cannot be loaded ({getattr(exc, 'reason', None) or exc})"


class ListenerTls:
    """The TLS of one listener, reloadable in place."""

    def __init__(self, cert: Path, key: Path, section: str) -> None:
        self.files = (cert, key)
        self.section = section
        self.current = server_context(cert, key, section)
        self.context = server_context(cert, key, section)
        self.context.sni_callback = self._pick

    def _pick(self, connection: ssl.SSLObject, name: str | None, _: ssl.SSLContext) -> None:
        connection.context = self.current

    def reload(self) -> bool:
        """Load the files again; a bad pair keeps the old one, with a warning."""
        try:
            self.current = server_context(*self.files, self.section)
        except TlsError as exc:
            fields = {"listener": self.section, "error": str(exc)}
            log.warning("certificate not reloaded; the old one stays", extra={"fields": fields})
            return False
        log.info("certificate reloaded", extra={"fields": {"listener": self.section}})
        return True


def listener_tls(limits: ListenerConfig, section: str) -> ListenerTls | None:
    """``section``'s TLS, or None when it serves plain HTTP."""
    cert, key = limits.tls_cert, limits.tls_key
    return ListenerTls(cert, key, section) if cert is not None and key is not None else None


@dataclass(frozen=True)
class Tls:
    """Both listeners' TLS, None where one serves plain HTTP."""

    proxy: ListenerTls | None
    admin: ListenerTls | None

    @classmethod
    def load(cls, config: Config) -> Tls:
        """Read the certificates and keys; TlsError names the first that cannot be used."""
        return cls(listener_tls(config.proxy, "proxy"), listener_tls(config.admin, "admin"))

    def reload(self) -> None:
        """SIGHUP: new connections get the certificates now in the files."""
        for tls in (self.proxy, self.admin):
            if tls is not None:
                tls.reload()
