"""The admin listener: app factory for ``/admin/v1`` and the web console."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from sidecar.app import redis_client
from sidecar.config import Config
from sidecar.errorpages import json_errors
from sidecar.store import RedisStore

CONFIG = web.AppKey("config", Config)
REDIS_URL = web.AppKey("redis_url", str)
STORE = web.AppKey("store", RedisStore)


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    client = redis_client(app[REDIS_URL], app[CONFIG].redis.timeout)
    app[STORE] = RedisStore(client)
    yield
    await client.aclose()


def build_admin_app(config: Config, redis_url: str) -> web.Application:
    app = web.Application(
        middlewares=[json_errors(config.proxy.retry_after)],
        client_max_size=config.admin.max_body_bytes,
    )
    app[CONFIG] = config
    app[REDIS_URL] = redis_url
    app.cleanup_ctx.append(_store_ctx)
    return app
