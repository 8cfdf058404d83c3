"""The access log and the request metrics: one middleware, outermost.

One JSON line per request, on the proxy and the admin listener alike, on the
``keystile.access`` logger: request id, client_id, user, API, method, path
(without its query, which may carry anything), status, latency and outcome.
Never a header value, never a secret. The same middleware keeps or creates
``X-Request-Id`` and returns it on every answer, and counts a proxied request
in ``keystile_requests_total``.

A client that goes away before its answer is logged with status 499, as nginx
does, so a cancelled upload still leaves its line.
"""

from __future__ import annotations

import asyncio
import random
import time

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from sidecar import headers
from sidecar.ops import logs
from sidecar.ops.metrics import NO_API, method_class
from sidecar.proxy.state import CONFIG, METRICS, OUTCOME, Outcome

log = logs.HotLogger("keystile.access")

CLIENT_CLOSED = 499


def middleware(
    *, api: str = NO_API, starts_as: str = "refused", counted: bool = True
) -> Middleware:
    """The proxy's by default. The admin listener's lines have ``api`` "admin", an outcome
    that ``starts_as`` "answered", and are not ``counted`` (keystile_requests_total is the
    proxy's)."""

    @web.middleware
    async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
        config = request.app[CONFIG]
        name = config.headers.request_id
        sent = request.headers.get(name)
        outcome = Outcome(headers.request_id(sent, "") or new_request_id(), api, outcome=starts_as)
        hops = config.proxy.trusted_hops
        forwarded_for = request.headers.getall("X-Forwarded-For", []) if hops > 0 else []
        outcome.client = headers.client_address(request.remote or "", forwarded_for, hops)
        request[OUTCOME] = outcome
        started = time.perf_counter()
        status = CLIENT_CLOSED
        try:
            response = await handler(request)
            status = response.status
            if not response.prepared:
                response.headers[name] = outcome.request_id
            return response
        except (asyncio.CancelledError, ConnectionError):
            outcome.reason = outcome.reason or "client closed the connection"
            raise
        finally:
            _record(request, outcome, status, time.perf_counter() - started, counted)

    return access_log


def new_request_id() -> str:
    """128 random bits as 32 hex digits, like a UUID4's, without its syscall.

    A request id correlates log lines; it guards nothing, so the process's
    seeded PRNG serves (``secrets`` would ask the kernel on every request).
    """
    return f"{random.getrandbits(128):032x}"


def _record(
    request: web.Request, outcome: Outcome, status: int, seconds: float, counted: bool
) -> None:
    if counted:
        request.app[METRICS].count_request(outcome.api, method_class(request.method), status)
    fields = {
        "request_id": outcome.request_id,
        "client_id": outcome.client_id or None,
        "user": outcome.user or None,
        "api": outcome.api,
        "method": request.method,
        "path": request.rel_url.raw_path,
        "status": status,
        "latency_ms": round(seconds * 1000, 2),
        "outcome": outcome.outcome,
        "reason": outcome.reason or None,
        "client": outcome.client,
    }
    log.info("request", fields)
