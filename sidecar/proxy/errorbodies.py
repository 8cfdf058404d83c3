"""The one middleware that turns errors into the JSON bodies of spec section 3.

401 and 400 carry the ``WWW-Authenticate`` challenge of RFC 6750 section 3;
503 carries ``Retry-After`` (429 too, with the seconds left in its window).
An unexpected exception becomes a bare 500 with no detail (the traceback goes
to the log, which never holds a secret).
"""

from __future__ import annotations

import functools
import json
import logging

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from sidecar.errors import (
    InsufficientScope,
    InvalidRequest,
    InvalidToken,
    KeystileError,
    MissingCredential,
    TooManyAttempts,
)

log = logging.getLogger("keystile.errors")
REALM = 'Bearer realm="keystile"'


def challenge(error: KeystileError) -> str | None:
    if isinstance(error, MissingCredential):
        return REALM
    if isinstance(error, InvalidRequest | InvalidToken | InsufficientScope):
        return f'{REALM}, error="{error.code}"'
    return None


def error_response(error: KeystileError, retry_after: int = 1) -> web.Response:
    response = web.Response(
        body=_json(error.code, error.message(), error.field),
        status=error.status,
        content_type="application/json",
    )
    if (value := challenge(error)) is not None:
        response.headers["WWW-Authenticate"] = value
    if error.status == 503:
        response.headers["Retry-After"] = str(retry_after)
    if isinstance(error, TooManyAttempts):
        response.headers["Retry-After"] = str(error.retry_after)
    response.headers["Cache-Control"] = "no-store"
    return response


@functools.lru_cache(maxsize=256)
def _json(code: str, message: str, field: str | None) -> bytes:
    """``KeystileError.body()`` as bytes, rendered once per distinct body.

    A flood of bad credentials gets the same few bodies over and over; the
    message is ours (``public_message``/``message()``), never request bytes,
    so the set is small.
    """
    body = {"error": code, "message": message}
    if field is not None:
        body["field"] = field
    return json.dumps(body).encode()


def json_errors(retry_after: int) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except KeystileError as error:
            return error_response(error, retry_after)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            body = {"error": exc.reason.lower().replace(" ", "_"), "message": exc.reason}
            response = web.json_response(body, status=exc.status)
            for name in ("Allow", "Retry-After"):
                if name in exc.headers:
                    response.headers[name] = exc.headers[name]
            return response
        except Exception:
            log.exception("unhandled error", extra={"fields": {"path": request.path}})
            body = {"error": "internal_error", "message": "internal error"}
            return web.json_response(body, status=500)

    return middleware
