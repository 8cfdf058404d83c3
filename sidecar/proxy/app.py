"""The proxy listener: app factory, shared state, and the request path.

    request -> credentials (pure) -> verifier (store -> argon2)
            -> policy (pure) -> headers (pure) -> upstream (stream)

Every resource (Redis pool, upstream client, argon2 thread pool, the
``last_used_at`` flusher) is opened and closed in ``cleanup_ctx``. Serve the
app with ``sidecar.proxy.listeners.ProxyRunner``, which never echoes a bad request.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from yarl import URL

from sidecar import headers
from sidecar.config import Config
from sidecar.errors import BodyTooLarge, StoreUnavailable, UpstreamTimeout, UpstreamUnavailable
from sidecar.ops.metrics import CONTENT_TYPE, OWN_API, ProxyMetrics
from sidecar.proxy import accesslog, forwardauth, websocket
from sidecar.proxy.decision import Decision, authenticate, authorize
from sidecar.proxy.errorbodies import error_response, json_errors
from sidecar.proxy.http1client import Origin, UpstreamPool
from sidecar.proxy.state import (
    CLIENT,
    CONFIG,
    METRICS,
    POOL,
    REDIS_URL,
    STORE,
    USAGE,
    VERIFIER,
    outcome_of,
)
from sidecar.proxy.upstream import forward, session
from sidecar.verification import runtime, usage

__all__ = ["CLIENT", "CONFIG", "METRICS", "REDIS_URL", "STORE", "USAGE", "VERIFIER"]

log = logging.getLogger("keystile.proxy")


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    # The store, cache, argon2 pool and invalidation listener of this process,
    # shared with the admin listener when `serve` runs both (sidecar/runtime.py).
    async with runtime.for_app(app, app[CONFIG], app[REDIS_URL]).used() as shared:
        app[STORE] = shared.store
        app[VERIFIER] = shared.verifier
        # The cache and argon2 counters, copied into /_keystile/metrics before each
        # scrape, and in a worker also every second for the other workers' scrapes.
        metrics = app[METRICS]
        counters = runtime.VerificationMetrics(metrics.registry, shared)
        async with counters.copied(metrics.before_scrape, periodically=metrics.shared is not None):
            yield


async def _usage_ctx(app: web.Application) -> AsyncIterator[None]:
    async with usage.recording(app[STORE], app[CONFIG].tokens.last_used_interval) as recorder:
        app[USAGE] = recorder
        yield


async def _client_ctx(app: web.Application) -> AsyncIterator[None]:
    app[CLIENT] = session()
    app[POOL] = UpstreamPool()
    yield
    app[POOL].close()
    await app[CLIENT].close()


def build_proxy_app(
    config: Config, redis_url: str, *, shared_metrics: Path | None = None
) -> web.Application:
    """The proxy app; ``shared_metrics`` is a worker's directory of every worker's metrics."""
    app = web.Application(
        middlewares=[accesslog.middleware(), json_errors(config.proxy.retry_after)],
        client_max_size=config.proxy.max_body_bytes,
    )
    app[CONFIG] = config
    app[REDIS_URL] = redis_url
    app[METRICS] = ProxyMetrics(shared_metrics)
    # The store opens before the flusher and closes after it (cleanup runs in reverse).
    app.cleanup_ctx.extend([_store_ctx, _usage_ctx, _client_ctx])
    app.router.add_get("/_keystile/healthz", healthz)
    app.router.add_get("/_keystile/readyz", readyz)
    app.router.add_get("/_keystile/metrics", metrics)
    app.router.add_route("*", forwardauth.CHECK_PATH, forwardauth.check)
    app.router.add_route("*", forwardauth.CHECK_PATH + "/{tail:.*}", forwardauth.check)
    app.router.add_route("*", "/{tail:.*}", proxy, expect_handler=expect_later)
    return app


async def healthz(request: web.Request) -> web.Response:
    _own(request)
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    _own(request)
    try:
        await request.app[STORE].ping()
    except StoreUnavailable:
        request.app[METRICS].store_errors.inc()
        body = {"status": "unavailable", "store": "unreachable"}
        retry_after = str(request.app[CONFIG].proxy.retry_after)
        return web.json_response(body, status=503, headers={"Retry-After": retry_after})
    return web.json_response({"status": "ok", "store": "reachable"})


async def metrics(request: web.Request) -> web.Response:
    _own(request)
    body = request.app[METRICS].exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def _own(request: web.Request) -> None:
    outcome_of(request).api = OWN_API
    outcome_of(request).outcome = "own"


async def expect_later(request: web.Request) -> web.StreamResponse | None:
    """Answer ``Expect`` only after the credential passed (see ``proxy``).

    aiohttp's default sends ``100 Continue`` before any handler runs, which
    would invite the body of a request about to be refused (RFC 9110 10.1.1).
    """
    if request.headers.get("Expect", "").lower() != "100-continue":
        body = {"error": "expectation_failed", "message": "only 100-continue is supported"}
        return web.json_response(body, status=417)
    return None


async def proxy(request: web.Request) -> web.StreamResponse:
    config = request.app[CONFIG]
    if (refusal := _unsupported_coding(request)) is not None:
        return refusal
    verified = await authenticate(request)
    decision = authorize(request, verified, request.method, _raw_path(request))
    _check_method(request)
    _check_length(request, config.proxy.max_body_bytes)
    api = decision.route.api
    outcome_of(request).outcome = "forwarded"
    try:
        return await _send(request, decision)
    except BodyTooLarge as error:
        outcome_of(request).outcome, outcome_of(request).reason = "refused", error.reason
        return _closing(error_response(error, config.proxy.retry_after))
    except (UpstreamTimeout, UpstreamUnavailable) as error:
        _upstream_failed(request, api.name, error)
        raise


async def _send(request: web.Request, decision: Decision) -> web.StreamResponse:
    """Relay the allowed request: a WebSocket tunnel, or one streamed HTTP exchange."""
    config = request.app[CONFIG]
    api = decision.route.api
    upstream_headers = _upstream_headers(request, decision)
    target = decision.route.upstream_path + _query(request)
    if websocket.is_upgrade(request):
        url = URL(api.upstream + target, encoded=True)
        client = request.app[CLIENT]
        return await websocket.relay(request, client, url, upstream_headers, timeout=api.timeout)
    await _continue(request)
    return await forward(
        request,
        request.app[POOL],
        Origin.of(api.upstream),
        target,
        upstream_headers,
        timeout=api.timeout,
        max_body_bytes=config.proxy.max_body_bytes,
        rewrite_response=lambda h: headers.downstream_response(
            h, config.headers, outcome_of(request).request_id
        ),
        on_headers=functools.partial(request.app[METRICS].observe_upstream, api.name),
    )


#: TRACE would echo the forwarded request (identity headers included) back to
#: the client; CONNECT would turn the proxy into a tunnel. Neither is forwarded.
REFUSED_METHODS = frozenset({"TRACE", "CONNECT"})


def _check_method(request: web.Request) -> None:
    if request.method.upper() in REFUSED_METHODS:
        outcome_of(request).reason = f"method {request.method} is not forwarded"
        allowed = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE")
        raise web.HTTPMethodNotAllowed(request.method, allowed)


def _unsupported_coding(request: web.Request) -> web.Response | None:
    """501 and close for a transfer coding other than plain ``chunked``.

    aiohttp accepts ``gzip, chunked`` and hands over the still-gzipped bytes as
    if they were the body; RFC 9112 section 6.1 asks for a 501 instead.
    """
    if "Transfer-Encoding" not in request.headers:
        return None
    codings = ",".join(request.headers.getall("Transfer-Encoding"))
    if codings.strip().lower() == "chunked":
        return None
    outcome_of(request).reason = "unsupported transfer coding"
    body = {"error": "not_implemented", "message": "only the chunked transfer coding is supported"}
    return _closing(web.json_response(body, status=501))


def _raw_path(request: web.Request) -> str:
    return request.raw_path.partition("?")[0]


def _query(request: web.Request) -> str:
    _, mark, query = request.raw_path.partition("?")
    return mark + query


def _check_length(request: web.Request, limit: int) -> None:
    """413 before the upstream is contacted when the declared length is over the limit."""
    length = request.content_length
    if length is not None and length > limit:
        outcome_of(request).reason = f"declared body over {limit} bytes"
        raise BodyTooLarge(outcome_of(request).reason)


async def _continue(request: web.Request) -> None:
    if request.version >= (1, 1) and request.headers.get("Expect", "").lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the real response has not started


def _upstream_headers(request: web.Request, decision: Decision) -> list[tuple[str, str]]:
    config = request.app[CONFIG]
    return headers.upstream_request(
        list(request.headers.items()),
        config.headers,
        decision.identity,
        forward_credential=decision.route.api.forward_credential,
        peer=request.remote or "",
        scheme=request.scheme,
        host=request.host,
        request_id=outcome_of(request).request_id,
        trusted_hops=config.proxy.trusted_hops,
    )


def _closing(response: web.Response) -> web.Response:
    # The rest of the body is still on the wire: never read it as a next request.
    response.force_close()
    return response


def _upstream_failed(
    request: web.Request, api: str, error: UpstreamTimeout | UpstreamUnavailable
) -> None:
    kind = "timeout" if isinstance(error, UpstreamTimeout) else "unavailable"
    outcome_of(request).outcome, outcome_of(request).reason = "failed", f"upstream {kind}"
    request.app[METRICS].upstream_errors.labels(api, kind).inc()
