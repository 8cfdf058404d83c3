"""Listeners that never echo a bad request and bound what a connection may hold:
``QuietRunner`` and ``ProxyRunner``.

aiohttp answers a request it cannot parse (a header with a control byte, both
``Content-Length`` and ``Transfer-Encoding``, two lengths...) with a 400 whose
text, and whose error log line, quote the offending bytes, which may be an
``Authorization`` value. ``QuietRequestHandler.handle_error`` answers a fixed
JSON body instead, logs only the error's class and the peer, and closes the
connection (RFC 9112 section 11.2: after a framing error nothing that follows on
the connection can be trusted, so a smuggled second request is never read).

The handler also enforces a listener's ``ListenerConfig`` (see docs/connections.md):
``idle_timeout`` is aiohttp's own keep-alive timer, which runs from the
connection's opening and from each response until a request head is complete;
``header_timeout`` runs from a head's first byte to its end and answers 408;
``max_connections`` closes a connection past the limit before aiohttp sees it.
A request line whose version is not HTTP/1.0 or HTTP/1.1 is answered 505 (RFC
9110 section 15.6.6), an HTTP/0.9 one (no version) 400, and neither reaches a
handler.

What of aiohttp's internals this needs (the parsed-head queue, the server's
handler factory) is reached through ``sidecar.proxy.aiohttp_internals`` only.

``QuietRunner`` suits any listener that receives credentials (the admin API
too). ``ProxyRunner`` also turns ``handler_cancellation`` on: a client that
disconnects cancels its handler, and with it the upstream request it was
waiting on.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web
from aiohttp.http import HttpVersion, HttpVersion10, HttpVersion11
from aiohttp.http_exceptions import HttpProcessingError

from sidecar.config import ListenerConfig
from sidecar.proxy.aiohttp_internals import (
    HandlerRunner,
    HandlerServer,
    HookedRequestHandler,
    is_unknown_version,
)

log = logging.getLogger("keystile.listener")

_BODIES = {
    400: {"error": "invalid_request", "message": "the request could not be parsed"},
    408: {"error": "request_timeout", "message": "the request head took too long"},
    413: {"error": "payload_too_large", "message": "a request line or header is too large"},
    431: {"error": "invalid_request", "message": "the request headers are too large"},
    501: {"error": "not_implemented", "message": "the request uses an unsupported feature"},
    505: {"error": "http_version_not_supported", "message": "only HTTP/1.0 and HTTP/1.1"},
}
_INTERNAL = {"error": "internal_error", "message": "internal error"}
_SERVED_VERSIONS = (HttpVersion11, HttpVersion10)
#: Longest request line kept to tell an HTTP/0.9 one; aiohttp refuses longer lines.
_LINE_LIMIT = 8190


class HeadTimeout(HttpProcessingError):
    code, message = 408, "request head not complete within header_timeout"


class VersionNotSupported(HttpProcessingError):
    code, message = 505, "HTTP version other than 1.0 and 1.1"


class NoVersion(HttpProcessingError):
    # HTTP/0.9 has no status line, so a 505 would mean nothing to such a client.
    code, message = 400, "request line without an HTTP/1.x version"


class Occupancy:
    """One listener's limits and how many connections it holds in this worker."""

    __slots__ = ("limits", "open")

    def __init__(self, limits: ListenerConfig) -> None:
        self.limits = limits
        self.open = 0


class QuietRequestHandler(HookedRequestHandler):
    __slots__ = ("_admitted", "_head_timer", "_line", "_occupancy")

    def __init__(self, manager: web.Server, *, occupancy: Occupancy, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._occupancy = occupancy
        self._admitted = False
        self._head_timer: asyncio.TimerHandle | None = None
        #: The request line so far, kept only while a head arrives in pieces.
        self._line: bytes | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        occupancy = self._occupancy
        if occupancy.open >= occupancy.limits.max_connections:
            self.refuse_connection(transport)
            return
        occupancy.open += 1
        self._admitted = True
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._admitted:
            self._admitted = False
            self._occupancy.open -= 1
        self._stop_head_timer()
        super().connection_lost(exc)

    def heads_parsed(self) -> None:
        if self._head_timer is not None:
            self._stop_head_timer()

    def refusal_of(self, version: HttpVersion) -> HttpProcessingError | None:
        if version in _SERVED_VERSIONS:
            return None  # HTTP/1.1 as a new tuple (aiohttp's Python parser)
        return NoVersion() if version.major == 0 else VersionNotSupported()

    def head_begun(self, data: bytes) -> None:
        """Part of a head arrived while no request runs: time it, and spot HTTP/0.9."""
        if self._head_timer is None:
            timeout = self._occupancy.limits.header_timeout
            self._head_timer = self.event_loop.call_later(timeout, self._head_expired)
            self._line = b""
        if self._line is None:
            return
        line = (self._line + data).lstrip(b"\r\n")  # RFC 9112 2.2: empty lines may precede
        end = line.find(b"\n")
        if end < 0:
            self._line = line if len(line) <= _LINE_LIMIT else None
            return
        self._line = None
        if line[:end].rstrip(b"\r").count(b" ") < 2:  # method SP target SP version
            self._refuse(NoVersion())

    def _head_expired(self) -> None:
        self._head_timer = None
        self._refuse(HeadTimeout())

    def _stop_head_timer(self) -> None:
        self._line = None
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse(self, exc: HttpProcessingError) -> None:
        self._stop_head_timer()
        self.refuse(exc)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # ``message`` and ``str(exc)`` may quote request bytes: neither is used.
        status = _refusal_status(status, exc)
        fields = {"peer": request.remote, "status": status, "error": type(exc).__name__}
        if isinstance(exc, HttpProcessingError) or status < 500:
            log.warning("request refused before routing", extra={"fields": fields})
        else:
            # Our own fault, not the request's bytes: the traceback helps and holds no secret.
            log.error("unhandled error", exc_info=exc, extra={"fields": fields})
        if request.writer.output_size > 0:
            raise ConnectionError("response already started")
        body = _BODIES.get(status, _INTERNAL if status >= 500 else _BODIES[400])
        response = web.Response(
            status=status,
            text=json.dumps(body),
            content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )
        response.force_close()
        return response


def _refusal_status(status: int, exc: BaseException | None) -> int:
    # llhttp refuses a well-formed but unknown version (HTTP/1.2, HTTP/3.0) as a bad
    # status line; only its text tells it from a malformed line. Error path only.
    if status == 400 and is_unknown_version(exc):
        return 505
    return status


class QuietServer(HandlerServer):
    handler_class = QuietRequestHandler


class QuietRunner(HandlerRunner):
    """``web.AppRunner`` with the quiet error handler and the listener's ``ListenerConfig``."""

    server_class = QuietServer

    def __init__(self, app: web.Application, limits: ListenerConfig, **kwargs: Any) -> None:
        kwargs.setdefault("access_log", None)  # sidecar.proxy.accesslog writes our own
        kwargs["keepalive_timeout"] = limits.idle_timeout
        kwargs["occupancy"] = Occupancy(limits)  # handed to each handler by QuietServer
        super().__init__(app, **kwargs)


class ProxyRunner(QuietRunner):
    """The proxy's runner: quiet, and a client that goes away cancels its handler."""

    def __init__(self, app: web.Application, limits: ListenerConfig, **kwargs: Any) -> None:
        kwargs.setdefault("handler_cancellation", True)
        super().__init__(app, limits, **kwargs)
