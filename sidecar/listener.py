"""Listeners that never echo a bad request: ``QuietRunner`` and ``ProxyRunner``.

aiohttp answers a request it cannot parse (a header with a control byte, both
``Content-Length`` and ``Transfer-Encoding``, two lengths...) with a 400 whose
text, and whose error log line, quote the offending bytes, which may be an
``Authorization`` value. ``QuietRequestHandler.handle_error`` answers a fixed
JSON body instead, logs only the error's class and the peer, and closes the
connection (RFC 9112 section 11.2: after a framing error nothing that follows on
the connection can be trusted, so a smuggled second request is never read).

``QuietRunner`` suits any listener that receives credentials (the admin API
too). ``ProxyRunner`` also turns ``handler_cancellation`` on: a client that
disconnects cancels its handler, and with it the upstream request it was
waiting on.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

log = logging.getLogger("keystile.listener")

_BODIES = {
    400: {"error": "invalid_request", "message": "the request could not be parsed"},
    413: {"error": "payload_too_large", "message": "a request line or header is too large"},
    431: {"error": "invalid_request", "message": "the request headers are too large"},
    501: {"error": "not_implemented", "message": "the request uses an unsupported feature"},
}
_INTERNAL = {"error": "internal_error", "message": "internal error"}


class QuietRequestHandler(RequestHandler):
    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # ``message`` and ``str(exc)`` may quote request bytes: neither is used.
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


class QuietServer(web.Server):
    def __call__(self) -> RequestHandler:
        return QuietRequestHandler(self, loop=self._loop, **self._kwargs)


class QuietRunner(web.AppRunner):
    """``web.AppRunner`` with the quiet error handler, for any listener that sees credentials."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        kwargs.setdefault("access_log", None)  # sidecar.accesslog writes our own
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # aiohttp builds its Server inside Application; QuietServer adds no state,
        # only the protocol factory, so adopting the built instance is safe.
        server.__class__ = QuietServer
        return server


class ProxyRunner(QuietRunner):
    """The proxy's runner: quiet, and a client that goes away cancels its handler."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        kwargs.setdefault("handler_cancellation", True)
        super().__init__(app, **kwargs)
