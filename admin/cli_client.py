"""The command line's side of the admin API: where it is, who calls, and one HTTP call.

Where: ``--admin-url``, else ``KEYSTILE_ADMIN_URL``, else the ``admin.listen``
of ``--config FILE`` (``https://`` when it sets ``admin.tls_cert``), else
``http://127.0.0.1:8081``. Who: ``--token-file`` (``-`` for stdin), else
``KEYSTILE_TOKEN``; never a flag holding the secret, which would land in
shell history and ``ps``.

The stdlib's ``http.client`` is enough for one synchronous call per command,
and keeps the command line free of an event loop. Every failure becomes a
``Failure`` (exit 1) or a ``BadUsage`` (exit 2) with one line to show; none of
them carries the credential.
"""

from __future__ import annotations

import http.client
import json
import ssl
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import click

from sidecar import config as configuration
from sidecar.redaction import redact

DEFAULT_URL = "http://127.0.0.1:8081"
API_ROOT = "/admin/v1"
TIMEOUT = 30
#: The command line's own variables, which are not config keys.
OWN_VARIABLES = frozenset({"KEYSTILE_TOKEN", "KEYSTILE_ADMIN_URL"})
WHERE_HINT = "check --admin-url, KEYSTILE_ADMIN_URL or admin.listen, and that keystile serve runs"


class Failure(click.ClickException):
    """The admin API refused, or could not be reached: exit 1 with one line."""

    exit_code = 1

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        #: The admin API's HTTP status when it answered, else None.
        self.status = status

    def show(self, file: Any = None) -> None:
        click.echo(f"keystile: {self.message}", err=True)


class BadUsage(Failure):
    """The command cannot be run as given (no credential, a bad URL): exit 2."""

    exit_code = 2


@dataclass(frozen=True)
class Target:
    url: str
    token: str
    ca_file: Path | None = None

    @property
    def shown_url(self) -> str:
        """The URL with its credentials masked, fit for an error message."""
        return redact(self.url)


def admin_url(flag: str | None, config_path: Path | None, environ: Mapping[str, str]) -> str:
    if flag:
        return flag
    if environ.get("KEYSTILE_ADMIN_URL"):
        return environ["KEYSTILE_ADMIN_URL"]
    if config_path is None:
        return DEFAULT_URL
    others = {k: v for k, v in environ.items() if k not in OWN_VARIABLES}
    try:
        admin = configuration.load(config_path, others).admin
    except configuration.ConfigError as exc:
        raise BadUsage(f"--config {config_path}: " + "; ".join(exc.problems)) from None
    # A wildcard bind is reached on loopback from this machine.
    listen = admin.listen
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(listen.host, listen.host)
    scheme = "https://" if admin.tls_cert is not None else "http://"
    return scheme + str(configuration.HostPort(host, listen.port))


def credential(token_file: str | None, environ: Mapping[str, str]) -> str:
    if token_file is not None:
        token = _read_token_file(token_file)
    else:
        token = environ.get("KEYSTILE_TOKEN", "").strip()
    if not token:
        raise BadUsage("no credential: set KEYSTILE_TOKEN or pass --token-file PATH")
    if not (token.isascii() and token.isprintable()) or " " in token:
        raise BadUsage("the credential holds spaces or control characters; check its source")
    return token


def _read_token_file(path: str) -> str:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not readable text"
        raise BadUsage(f"--token-file {path}: {reason}") from None
    token = text.strip()
    if not token:
        raise BadUsage(f"--token-file {path}: the file is empty")
    return token


def call(
    target: Target,
    method: str,
    path: str,
    body: Mapping[str, Any] | None = None,
    query: Mapping[str, Any] | None = None,
) -> Any:
    """One admin API call: its decoded JSON body (``None`` for 204), or a ``Failure``."""
    status, raw = _exchange(target, method, _request_path(target, path, query), body)
    if status == 204:
        return None
    decoded = _decode(raw)
    if status >= 400 or not isinstance(decoded, dict):
        raise Failure(refusal(status, decoded), status)
    return decoded


def segment(value: str) -> str:
    """One path segment of a URL, escaped (a client_id, username or role name)."""
    return quote(value, safe="")


def _request_path(target: Target, path: str, query: Mapping[str, Any] | None) -> str:
    base = urlsplit(target.url).path.rstrip("/")
    wanted = {k: v for k, v in (query or {}).items() if v is not None}
    return base + API_ROOT + path + ("?" + urlencode(wanted) if wanted else "")


def _exchange(
    target: Target, method: str, path: str, body: Mapping[str, Any] | None
) -> tuple[int, bytes]:
    connection = _connection(target)
    headers = {"Authorization": f"Bearer {target.token}", "Accept": "application/json"}
    payload = None if body is None else json.dumps(body).encode()
    if payload is not None:
        headers["Content-Type"] = "application/json"
    try:
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    except ssl.SSLError as exc:
        message = f"TLS with the admin API at {target.shown_url} failed: {exc.reason}"
        raise Failure(message + "; for a private CA pass --ca-file") from None
    except (OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        where = f"cannot reach the admin API at {target.shown_url}"
        raise Failure(f"{where}: {reason}; {WHERE_HINT}") from None
    finally:
        connection.close()


def _connection(target: Target) -> http.client.HTTPConnection:
    parts = urlsplit(target.url)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if parts.scheme not in ("http", "https") or not host:
        raise BadUsage(f"admin URL {target.shown_url!r} is not an http:// or https:// URL")
    if parts.scheme == "http":
        return http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    try:
        context = ssl.create_default_context(cafile=target.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise BadUsage(f"--ca-file {target.ca_file}: {exc}") from None
    return http.client.HTTPSConnection(host, port, timeout=TIMEOUT, context=context)


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def refusal(status: int, body: Any) -> str:
    """The one line for a refused call: the API's field and message, and what to do."""
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        return (
            f"the admin API answered {status} without a JSON error; is this a Keystile admin URL?"
        )
    field = body.get("field")
    text = f"{field}: {body['message']}" if isinstance(field, str) and field else body["message"]
    hint = {
        401: "; check KEYSTILE_TOKEN or --token-file",
        403: "; this credential's level on the admin API is too low",
    }.get(status, "")
    return f"{text} ({status} {body.get('error', 'error')}){hint}"
