"""Real parts for the admin API tests: the admin app and the proxy on real loopback
ports, a real upstream, a real Redis, a full-admin token made as bootstrap makes it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from admin.app import build_admin_app
from admin.state import STORE
from sidecar.config import Config
from sidecar.proxy.app import build_proxy_app
from sidecar.store.management import AdminStore
from tests.kits.redis import free_port, make_config, seed_token

APIS = [
    {
        "name": "orders",
        "prefix": "/orders",
        "upstream": "http://127.0.0.1:9",
        "description": "Orders",
    },
    {"name": "billing", "prefix": "/billing", "upstream": "http://127.0.0.1:9"},
]


@dataclass
class Reply:
    status: int
    body: Any
    headers: Mapping[str, str]


@dataclass
class Harness:
    """An admin listener, a proxy in front of an echo upstream, and a full admin token."""

    config: Config
    store: AdminStore
    admin_url: str
    proxy_url: str
    session: aiohttp.ClientSession
    root: str  # bearer token with {"admin": "full"}, user "root"

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        data: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        sent = {"Authorization": f"Bearer {token or self.root}", **(headers or {})}
        url = self.admin_url + "/admin/v1" + path
        async with self.session.request(method, url, json=json, data=data, headers=sent) as resp:
            raw = await resp.read()
            body = await resp.json(content_type=None) if raw else None
            return Reply(resp.status, body, resp.headers)

    async def proxy_get(self, path: str, token: str) -> int:
        headers = {"Authorization": f"Bearer {token}"}
        async with self.session.get(self.proxy_url + path, headers=headers) as resp:
            await resp.read()
            return resp.status

    async def user(self, username: str, **fields: Any) -> None:
        reply = await self.call("POST", "/users", json={"username": username, **fields})
        assert reply.status == 201, reply.body

    async def token(self, **fields: Any) -> dict[str, Any]:
        """A new token through the API; the answer holds ``token`` and ``client_id``."""
        reply = await self.call("POST", "/tokens", json=fields)
        assert reply.status == 201, reply.body
        return dict(reply.body)


async def _echo(request: web.Request) -> web.Response:
    return web.json_response({"path": request.path})


@asynccontextmanager
async def harness(redis_url: str, **sections: Mapping[str, Any]) -> AsyncIterator[Harness]:
    upstream = web.Application()
    upstream.router.add_route("*", "/{tail:.*}", _echo)
    upstream_server = TestServer(upstream, port=free_port())
    await upstream_server.start_server()
    apis = [{**api, "upstream": str(upstream_server.make_url("/"))} for api in APIS]
    config = make_config(redis_url, apis, **sections)
    admin_server = TestServer(build_admin_app(config, redis_url), port=free_port())
    proxy_server = TestServer(build_proxy_app(config, redis_url), port=free_port())
    await admin_server.start_server()
    await proxy_server.start_server()
    store = AdminStore(admin_server.app[STORE].redis)
    root = await seed_token(store, config, user="root", access={"admin": "full"})
    try:
        async with aiohttp.ClientSession() as session:
            yield Harness(
                config=config,
                store=store,
                admin_url=str(admin_server.make_url("")).rstrip("/"),
                proxy_url=str(proxy_server.make_url("")).rstrip("/"),
                session=session,
                root=root.bearer,
            )
    finally:
        await proxy_server.close()
        await admin_server.close()
        await upstream_server.close()
