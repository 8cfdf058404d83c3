"""The proxy listener: app factory, shared state, and the request path.

    request -> credentials (pure) -> verifier (store -> argon2)
            -> policy (pure) -> headers (pure) -> upstream (stream)

Every resource (Redis pool, upstream client, argon2 thread pool) is opened and
closed in ``cleanup_ctx``.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web
from yarl import URL

from sidecar import credentials, headers, routing
from sidecar.config import Config
from sidecar.errorpages import json_errors
from sidecar.errors import InsufficientScope, InvalidRequest, NotFound, StoreUnavailable
from sidecar.hashing import Argon2Hasher
from sidecar.policy import allows, effective_level
from sidecar.store import RedisStore
from sidecar.upstream import forward, session
from sidecar.verifier import Verified, Verifier

log = logging.getLogger("keystile.proxy")

CONFIG = web.AppKey("config", Config)
REDIS_URL = web.AppKey("redis_url", str)
STORE = web.AppKey("store", RedisStore)
VERIFIER = web.AppKey("verifier", Verifier)
CLIENT = web.AppKey("client", aiohttp.ClientSession)


def redis_client(url: str, timeout: float) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
    )


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    client = redis_client(app[REDIS_URL], config.redis.timeout)
    app[STORE] = RedisStore(client)
    executor = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="argon2")
    app[VERIFIER] = Verifier(app[STORE], Argon2Hasher(config.hashing), executor)
    yield
    executor.shutdown(wait=False, cancel_futures=True)
    await client.aclose()


async def _client_ctx(app: web.Application) -> AsyncIterator[None]:
    app[CLIENT] = session()
    yield
    await app[CLIENT].close()


def build_proxy_app(config: Config, redis_url: str) -> web.Application:
    app = web.Application(
        middlewares=[json_errors(config.proxy.retry_after)],
        client_max_size=config.proxy.max_body_bytes,
    )
    app[CONFIG] = config
    app[REDIS_URL] = redis_url
    app.cleanup_ctx.extend([_store_ctx, _client_ctx])
    app.router.add_get("/_keystile/healthz", healthz)
    app.router.add_get("/_keystile/readyz", readyz)
    app.router.add_route("*", "/{tail:.*}", proxy)
    return app


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    try:
        await request.app[STORE].ping()
    except StoreUnavailable:
        body = {"status": "unavailable", "store": "unreachable"}
        return web.json_response(body, status=503, headers={"Retry-After": "1"})
    return web.json_response({"status": "ok", "store": "reachable"})


async def authenticate(request: web.Request) -> Verified:
    config = request.app[CONFIG]
    names = config.headers
    presented = credentials.read(
        config.tokens.prefix,
        request.headers.getall("Authorization", []),
        request.headers.getall(names.credential_client_id, []),
        request.headers.getall(names.credential_client_secret, []),
    )
    return await request.app[VERIFIER].verify(presented)


async def proxy(request: web.Request) -> web.StreamResponse:
    config = request.app[CONFIG]
    verified = await authenticate(request)
    raw_path, _, query = request.raw_path.partition("?")
    try:
        routing.check_path(raw_path)
    except (routing.UnsafePath, UnicodeDecodeError) as exc:
        raise InvalidRequest(
            str(exc) if isinstance(exc, routing.UnsafePath) else "bad path"
        ) from None
    route = routing.match(config.apis, raw_path)
    if route is None:
        raise NotFound("no API for path")
    level = effective_level(route.api.name, verified.access, verified.role_access)
    if not allows(level, request.method):
        raise InsufficientScope(f"{level.value} on {route.api.name}")
    request_id = request.headers.get(config.headers.request_id) or uuid.uuid4().hex
    identity = headers.Identity(verified.username, verified.client_id, verified.role, level.value)
    upstream_headers = headers.upstream_request(
        list(request.headers.items()),
        config.headers,
        identity,
        forward_credential=route.api.forward_credential,
        peer=request.remote or "",
        scheme=request.scheme,
        host=request.host,
        request_id=request_id,
    )
    url = URL(
        route.api.upstream + route.upstream_path + (f"?{query}" if query else ""), encoded=True
    )
    return await forward(
        request,
        request.app[CLIENT],
        url,
        upstream_headers,
        timeout=route.api.timeout,
        max_body_bytes=config.proxy.max_body_bytes,
        rewrite_response=lambda h: headers.downstream_response(h, config.headers, request_id),
    )
