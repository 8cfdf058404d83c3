"""The admin listener: app factory for ``/admin/v1`` (spec section 4).

    admin call -> credentials -> verifier (as on the proxy) -> authz (pure)
               -> schema (pure) -> one atomic store change -> JSON view

Every resource (the Redis pool, the argon2 thread pool) is opened and closed
in ``cleanup_ctx``. Callers are verified by ``admin.auth`` against the same
store and with the same checks as on the proxy.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from admin import openapi, views_me, views_people, views_tokens
from admin.auth import AdminVerifier
from admin.schema import Rules
from admin.service import Service
from admin.state import CONFIG, INDEX, REDIS_URL, RULES, SERVICE, STORE, VERIFIER
from admin.storeerrors import store_errors
from admin.tokenindex import TokenIndex
from sidecar.app import redis_client
from sidecar.config import Config
from sidecar.errorpages import json_errors
from sidecar.hashing import Argon2Hasher
from sidecar.lifecycle import AdminStore
from sidecar.verification import SHARED

__all__ = ["CONFIG", "REDIS_URL", "STORE", "build_admin_app"]


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    client = redis_client(app[REDIS_URL], config.redis.timeout)
    store = AdminStore(client)
    if (shared := app.get(SHARED)) is not None:
        # This process's proxy cache drops what a write changes before the call answers.
        shared.watch(store)
    hasher = Argon2Hasher(config.hashing)
    # Two threads: admin calls are few, and argon2 must not starve the proxy's pool.
    executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="admin-argon2")
    app[STORE] = store
    app[VERIFIER] = AdminVerifier(store, hasher, executor)
    app[SERVICE] = Service(store, hasher, config.tokens.prefix)
    app[INDEX] = TokenIndex(store, config.tokens.last_used_interval)
    # Load the listing index now rather than on the first GET /tokens (seconds at 100k).
    warm_up = asyncio.create_task(app[INDEX].warm_up())
    yield
    warm_up.cancel()
    await asyncio.gather(warm_up, return_exceptions=True)
    await app[INDEX].close()
    executor.shutdown(wait=False, cancel_futures=True)
    await client.aclose()


def build_admin_app(config: Config, redis_url: str) -> web.Application:
    app = web.Application(
        middlewares=[json_errors(config.proxy.retry_after), store_errors],
        client_max_size=config.admin.max_body_bytes,
    )
    app[CONFIG] = config
    app[REDIS_URL] = redis_url
    app[RULES] = Rules.from_config(config)
    app.cleanup_ctx.append(_store_ctx)
    app.router.add_routes(views_tokens.routes)
    app.router.add_routes(views_people.routes)
    app.router.add_routes(views_me.routes)
    app[openapi.DOCUMENT] = openapi.document(config)
    app.router.add_get("/admin/v1/openapi.json", openapi.view)
    return app
