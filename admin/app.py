"""The admin listener: app factory for ``/admin/v1`` (spec section 4).

    admin call -> credentials -> verifier (as on the proxy) -> authz (pure)
               -> schema (pure) -> one atomic store change -> JSON view

Every resource (the Redis pool, the argon2 thread pool, the ``last_used_at``
flusher, the retention passes, the notifier) is opened and closed in ``cleanup_ctx``; the
store pool and the argon2 pool are the process's ones (``Verification``), so
issuing a secret waits in the same bounded queue as verifying one. Callers
are verified by ``admin.auth`` on the proxy's own authentication path, or by a
web console session (admin/console/), whose page and static files the same
listener serves at ``/``. Every request leaves one line in the proxy's access
log (sidecar/proxy/accesslog.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import redis.asyncio as aioredis
from aiohttp import web

from admin import openapi, views_advice, views_me, views_people, views_replicas, views_tokens
from admin.auth import AdminVerifier
from admin.authz import ADMIN_API
from admin.console import views as console_views
from admin.console.auth import ConsoleAuth
from admin.console.headers import add_security_headers
from admin.console.sessions import SessionStore
from admin.propagation import Propagation
from admin.schema import Rules
from admin.service import Service
from admin.state import (
    CONFIG,
    CONSOLE,
    INDEX,
    METRICS,
    REDIS_URL,
    RULES,
    SERVICE,
    STORE,
    VERIFIER,
    WARM_INDEX,
)
from admin.storeerrors import store_errors
from admin.tokenindex import TokenIndex
from sidecar.config import Config, RetentionConfig
from sidecar.notify import notifier
from sidecar.ops.cancellation import background
from sidecar.ops.metrics import ProxyMetrics
from sidecar.proxy import accesslog
from sidecar.proxy.errorbodies import json_errors
from sidecar.store import retention
from sidecar.store.durability import Durability
from sidecar.store.management import AdminStore
from sidecar.verification import runtime, usage
from sidecar.verification.authentication import Authenticator

__all__ = ["CONFIG", "REDIS_URL", "STORE", "build_admin_app"]


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    # The store, cache, argon2 pool and listener of this process, shared with the
    # proxy listener when `serve` runs both (sidecar/runtime.py).
    async with runtime.for_app(app, config, app[REDIS_URL]).used() as shared:
        # On the process's one store pool, so that ``redis.max_connections`` bounds it all.
        store = AdminStore(shared.redis, Durability.from_config(config.redis))
        # A token written already inside a [[notify]] threshold is noticed by its write.
        store.notice_days = notifier.thresholds(config)
        # This process's cache drops what a write changes before the call answers.
        shared.watch(store)
        app[STORE] = store
        sessions = SessionStore(shared.redis, config.admin.session_idle_seconds)
        app[CONSOLE] = ConsoleAuth(sessions, store)
        tokens = config.tokens
        recording = usage.recording(store, tokens.last_used_interval, tokens.usage_days)
        async with recording as used, _propagation(app, shared) as propagation:
            authenticator = Authenticator(config, shared.verifier, used, app[METRICS])
            app[VERIFIER] = AdminVerifier(authenticator, app[CONSOLE])
            # Issuing hashes in the verifier's bounded pool: a flood of creates is a 503 too.
            app[SERVICE] = Service(store, shared.pool, config.tokens.prefix, propagation)
            app[INDEX] = TokenIndex(store, config.tokens.last_used_interval)
            # A flushed or restored store (sidecar/store/epoch.py) empties the index at once.
            shared.listener.on_store_replaced.append(app[INDEX].drop)
            # Expiry and leak notices to the [[notify]] webhooks, off every request's path.
            notifying = notifier.running(shared.redis, config, app[METRICS].registry)
            async with _warm(app), _retained(app, shared.redis), notifying:
                yield
            shared.listener.on_store_replaced.remove(app[INDEX].drop)
        await app[INDEX].close()


@asynccontextmanager
async def _propagation(
    app: web.Application, shared: runtime.Verification
) -> AsyncIterator[Propagation]:
    # Its own connection for the ack subscription: a wait never takes one from the pool.
    config = app[CONFIG]
    subscriber = runtime.listener_client(
        app[REDIS_URL], config.redis.timeout, topology=config.redis
    )
    propagation = Propagation(shared.redis, subscriber, config.admin.ack_timeout_seconds)
    hearing = background(propagation.run(), "keystile-ack-subscription")
    try:
        yield propagation
    finally:
        hearing.cancel()
        await asyncio.wait([hearing], timeout=runtime.CLOSE_WAIT)
        await subscriber.aclose()


@asynccontextmanager
async def _warm(app: web.Application) -> AsyncIterator[None]:
    # Load the listing index now rather than on the first GET /tokens (seconds at
    # 100k tokens), in one process only: with --workers the others load it when
    # a list reaches them, so N proxy workers do not each hold a copy for nothing.
    warm_ups = [asyncio.create_task(app[INDEX].warm_up())] if app[WARM_INDEX] else []
    try:
        yield
    finally:
        for task in warm_ups:
            task.cancel()
        await asyncio.gather(*warm_ups, return_exceptions=True)


def _retained(app: web.Application, client: aioredis.Redis) -> AbstractAsyncContextManager[None]:
    # One process trims, the one that warms the index: a pass is idempotent, but
    # N workers scanning every history each interval would be N times the work.
    policy = app[CONFIG].retention if app[WARM_INDEX] else RetentionConfig()
    return retention.running(client, policy)


def build_admin_app(
    config: Config,
    redis_url: str,
    *,
    warm_index: bool = True,
    metrics: ProxyMetrics | None = None,
) -> web.Application:
    """The admin app; ``metrics`` the proxy's, so its auth counters count admin callers too."""
    access_log = accesslog.middleware(api=ADMIN_API, starts_as="answered", counted=False)
    app = web.Application(
        middlewares=[access_log, json_errors(config.proxy.retry_after), store_errors],
        client_max_size=config.admin.max_body_bytes,
    )
    app[CONFIG] = config
    # Alone (tests, embedding), a registry nobody scrapes; under `serve`, the proxy's.
    app[METRICS] = metrics or ProxyMetrics()
    app[REDIS_URL] = redis_url
    app[WARM_INDEX] = warm_index
    app[RULES] = Rules.from_config(config)
    app.cleanup_ctx.append(_store_ctx)
    app.router.add_routes(views_tokens.routes)
    app.router.add_routes(views_advice.routes)
    app.router.add_routes(views_people.routes)
    app.router.add_routes(views_me.routes)
    app.router.add_routes(views_replicas.routes)
    app.router.add_get("/admin/v1/openapi.json", openapi.view)
    app.router.add_routes(console_views.routes)
    app.router.add_static("/console/static", console_views.STATIC)
    # Derived from the routes: one served under /admin/v1 but undocumented stops the build.
    app[openapi.DOCUMENT] = openapi.document(config, app.router.routes())
    app.on_response_prepare.append(add_security_headers)
    return app
