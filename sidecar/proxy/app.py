"""The proxy listener: app factory, shared state, and the request path.

    request -> credentials (pure) -> verifier (store -> argon2)
            -> policy (pure) -> headers (pure) -> upstream (stream)

Every resource (Redis pool, upstream client, argon2 thread pool, the
``last_used_at`` flusher) is opened and closed in ``cleanup_ctx``. Serve the
app with ``sidecar.proxy.listeners.ProxyRunner``, which never echoes a bad request.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from yarl import URL

from sidecar import headers
from sidecar.config import Config
from sidecar.errors import BodyTooLarge, StoreUnavailable, UpstreamTimeout, UpstreamUnavailable
from sidecar.ops.metrics import CONTENT_TYPE, OWN_API, ProxyMetrics
from sidecar.proxy import accesslog, aiohttp_internals, forwardauth, leaks, websocket
from sidecar.proxy.decision import Decision, authenticate, authorize
from sidecar.proxy.errorbodies import error_response, json_errors
from sidecar.proxy.http1client import Origin, UpstreamPool
from sidecar.proxy.state import (
    AUTHENTICATOR,
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
from sidecar.proxy.upstream import Exchange, UpstreamRequest, session
from sidecar.verification import runtime, usage
from sidecar.verification.authentication import Authenticator

__all__ = ["CLIENT", "CONFIG", "METRICS", "REDIS_URL", "STORE", "USAGE", "VERIFIER"]

log = logging.getLogger("keystile.proxy")


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    # The store, cache, argon2 pool and invalidation listener of this process,
    # shared with the admin listener when `serve` runs both (sidecar/runtime.py).
    async with runtime.for_app(app, app[CONFIG], app[REDIS_URL]).used() as shared:
        app[STORE] = shared.store
        app[VERIFIER] = shared.verifier
        app[leaks.DESK] = leaks.LeakDesk(app[CONFIG], shared, app[METRICS].registry)
        # The cache and argon2 counters, copied into /_keystile/metrics before each
        # scrape, and in a worker also every second for the other workers' scrapes.
        metrics = app[METRICS]
        counters = runtime.VerificationMetrics(metrics.registry, shared)
        async with counters.copied(metrics.before_scrape, periodically=metrics.shared is not None):
            yield


async def _usage_ctx(app: web.Application) -> AsyncIterator[None]:
    tokens = app[CONFIG].tokens
    used = usage.recording(app[STORE], tokens.last_used_interval, tokens.usage_days)
    async with used as recorder:
        app[USAGE] = recorder
        app[AUTHENTICATOR] = Authenticator(app[CONFIG], app[VERIFIER], recorder, app[METRICS])
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
    app.router.add_route("*", leaks.PATH, leaks.report)
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
    """The proxied request path, top to bottom.

    Its access-log outcome is written here only, in the order things are
    decided (``decision`` records the credential and route refusals).
    """
    limit = request.app[CONFIG].proxy.max_body_bytes
    outcome = outcome_of(request)
    if _unsupported_coding(request):
        outcome.reason = "unsupported transfer coding"
        return _closing(web.json_response(NOT_IMPLEMENTED, status=501))
    verified = await authenticate(request)
    decision = authorize(request, verified, request.method, _raw_path(request))
    if request.method.upper() in REFUSED_METHODS:
        outcome.reason = f"method {request.method} is not forwarded"
        raise web.HTTPMethodNotAllowed(request.method, FORWARDED_METHODS)
    if (length := request.content_length) is not None and length > limit:
        # 413 before the upstream is contacted.
        outcome.reason = f"declared body over {limit} bytes"
        raise BodyTooLarge(outcome.reason)
    outcome.outcome = "forwarded"
    request.app[USAGE].uses.note(verified.client_id, decision.route.api.name, request.method)
    try:
        return await _send(request, decision, outcome.request_id)
    except BodyTooLarge as error:
        outcome.outcome, outcome.reason = "refused", error.reason
        return _closing(error_response(error, request.app[CONFIG].proxy.retry_after))
    except (UpstreamTimeout, UpstreamUnavailable) as error:
        kind = "timeout" if isinstance(error, UpstreamTimeout) else "unavailable"
        outcome.outcome, outcome.reason = "failed", f"upstream {kind}"
        request.app[METRICS].upstream_errors.labels(decision.route.api.name, kind).inc()
        raise


async def _send(request: web.Request, decision: Decision, request_id: str) -> web.StreamResponse:
    """Relay the allowed request: a WebSocket tunnel, or one streamed HTTP exchange."""
    config = request.app[CONFIG]
    api = decision.route.api
    upstream_headers = _upstream_headers(request, decision, request_id)
    target = decision.route.upstream_path + _query(request)
    if websocket.is_upgrade(request):
        url = URL(api.upstream + target, encoded=True)
        client = request.app[CLIENT]
        return await websocket.relay(request, client, url, upstream_headers, timeout=api.timeout)
    await _continue(request)
    origin = Origin.of(api.upstream)
    hop = UpstreamRequest(
        origin, target, upstream_headers, api.timeout, config.proxy.max_body_bytes
    )
    async with Exchange(request, request.app[POOL], hop) as answer:
        request.app[METRICS].observe_upstream(api.name, answer.latency)
        answer_headers = headers.downstream_response(answer.headers, config.headers, request_id)
        return await answer.relay(answer_headers)


#: TRACE would echo the forwarded request (identity headers included) back to
#: the client; CONNECT would turn the proxy into a tunnel. Neither is forwarded.
REFUSED_METHODS = frozenset({"TRACE", "CONNECT"})
FORWARDED_METHODS = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE")
NOT_IMPLEMENTED = {
    "error": "not_implemented",
    "message": "only the chunked transfer coding is supported",
}


def _unsupported_coding(request: web.Request) -> bool:
    """A transfer coding other than plain ``chunked``: 501, and close.

    aiohttp accepts ``gzip, chunked`` and hands over the still-gzipped bytes as
    if they were the body; RFC 9112 section 6.1 asks for a 501 instead.
    """
    if "Transfer-Encoding" not in request.headers:
        return False
    codings = ",".join(request.headers.getall("Transfer-Encoding"))
    return codings.strip().lower() != "chunked"


def _raw_path(request: web.Request) -> str:
    return request.raw_path.partition("?")[0]


def _query(request: web.Request) -> str:
    _, mark, query = request.raw_path.partition("?")
    return mark + query


async def _continue(request: web.Request) -> None:
    if request.version >= (1, 1) and request.headers.get("Expect", "").lower() == "100-continue":
        await aiohttp_internals.send_continue(request)


def _upstream_headers(
    request: web.Request, decision: Decision, request_id: str
) -> list[tuple[str, str]]:
    config = request.app[CONFIG]
    return headers.upstream_request(
        list(request.headers.items()),
        config.headers,
        decision.identity,
        forward_credential=decision.route.api.forward_credential,
        peer=request.remote or "",
        scheme=request.scheme,
        host=request.host,
        request_id=request_id,
        trusted_hops=config.proxy.trusted_hops,
    )


def _closing(response: web.Response) -> web.Response:
    # The rest of the body is still on the wire: never read it as a next request.
    response.force_close()
    return response
