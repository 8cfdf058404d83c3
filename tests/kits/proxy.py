"""Real parts for the proxy tests: a recording upstream, the proxy on a real port,
raw-socket HTTP, and seeded tokens."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from sidecar.config import Config
from sidecar.proxy.app import build_proxy_app
from sidecar.proxy.listeners import ProxyRunner
from sidecar.store.management import AdminStore
from tests.kits.redis import free_port, make_config, seed_token

CHUNK = b"x" * 65536


@dataclass
class Seen:
    """One request as the upstream received it."""

    method: str
    raw_path: str
    headers: list[tuple[str, str]]
    body_length: int

    def header(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]


@dataclass
class Upstream:
    """An aiohttp server on loopback that records what reaches it."""

    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("GET", "/o/ws", self.ws_echo)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self.runner.setup()
        self.port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        length = 0
        async for chunk in request.content.iter_any():
            length += len(chunk)
        raw_headers = [(n.decode(), v.decode()) for n, v in request.raw_headers]
        self.seen.append(Seen(request.method, request.raw_path, raw_headers, length))
        self.arrived.set()
        path = request.raw_path.partition("?")[0]
        for suffix, action in self.actions.items():
            if path.endswith(suffix):
                return await action(self, request)
        return web.json_response({"path": request.raw_path, "length": length})

    async def slow(self, request: web.Request) -> web.StreamResponse:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return web.Response(text="late")

    async def download(self, request: web.Request) -> web.StreamResponse:
        size = int(request.query.get("bytes", "0"))
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = size
        await response.prepare(request)
        sent = size if request.method == "HEAD" else 0
        while sent < size:
            piece = CHUNK[: min(len(CHUNK), size - sent)]
            await response.write(piece)
            sent += len(piece)
        await response.write_eof()
        return response

    async def cookies(self, request: web.Request) -> web.StreamResponse:
        response = web.Response(text="ok")
        response.headers.add("Set-Cookie", "a=1; Path=/")
        response.headers.add("Set-Cookie", "b=2; Path=/; HttpOnly")
        response.headers.add("Connection", "X-Secret-Hop")
        response.headers.add("X-Secret-Hop", "hop")
        return response

    async def no_content(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=204)

    async def not_modified(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=304, headers={"ETag": '"v1"'})

    async def reset(self, request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.abort()
        await asyncio.sleep(1)
        return web.Response(text="never")

    async def truncate(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = 1000
        await response.prepare(request)
        await response.write(b"partial")
        await asyncio.sleep(0.05)
        assert request.transport is not None
        request.transport.abort()
        return response

    async def ws_echo(self, request: web.Request) -> web.StreamResponse:
        raw_headers = [(n.decode(), v.decode()) for n, v in request.raw_headers]
        self.seen.append(Seen(request.method, request.raw_path, raw_headers, 0))
        ws = web.WebSocketResponse(protocols=("chat.v2",))
        await ws.prepare(request)
        async for message in ws:
            if message.type.name == "TEXT":
                await ws.send_str("echo:" + message.data)
            elif message.type.name == "BINARY":
                await ws.send_bytes(message.data[::-1])
        return ws

    actions = {
        "/slow": slow,
        "/download": download,
        "/cookies": cookies,
        "/no-content": no_content,
        "/not-modified": not_modified,
        "/reset": reset,
        "/truncate": truncate,
    }


@dataclass
class Proxy:
    config: Config
    port: int
    runner: ProxyRunner

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def start_proxy(config: Config, redis_url: str) -> Proxy:
    runner = ProxyRunner(build_proxy_app(config, redis_url), config.proxy)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return Proxy(config, port, runner)


def proxy_config(redis_url: str, upstream: Upstream, **sections: Mapping[str, Any]) -> Config:
    dead = free_port()  # nothing listens there
    apis = [
        {"name": "orders", "prefix": "/orders", "upstream": upstream.url + "/o"},
        {"name": "billing", "prefix": "/billing", "upstream": upstream.url + "/b"},
        {"name": "slowapi", "prefix": "/slowapi", "upstream": upstream.url, "timeout": 0.5},
        {
            "name": "raw",
            "prefix": "/raw",
            "upstream": upstream.url,
            "strip_prefix": False,
            "forward_credential": True,
        },
        {"name": "dead", "prefix": "/dead", "upstream": f"http://127.0.0.1:{dead}"},
    ]
    tokens = {"last_used_interval": 0.2}
    tokens.update(sections.pop("tokens", {}))
    return make_config(redis_url, apis, tokens=tokens, **sections)


@dataclass
class Tokens:
    full: str
    read_orders: str
    full_id: str
    full_secret: str


async def seed(store: AdminStore, config: Config) -> Tokens:
    full = await seed_token(store, config, access={"*": "full"})
    read = await seed_token(store, config, user="bob", access={"orders": "read"})
    return Tokens(full.bearer, read.bearer, full.token.client_id, full.client_secret)


@dataclass
class Env:
    upstream: Upstream
    proxy: Proxy
    tokens: Tokens

    @property
    def url(self) -> str:
        return self.proxy.url

    def bearer(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.tokens.full}"}


@asynccontextmanager
async def running(
    redis_url: str, store: AdminStore, **sections: Mapping[str, Any]
) -> AsyncIterator[Env]:
    """A recording upstream and the proxy in front of it, with two seeded tokens."""
    upstream = Upstream()
    await upstream.start()
    config = proxy_config(redis_url, upstream, **sections)
    proxy = await start_proxy(config, redis_url)
    try:
        yield Env(upstream, proxy, await seed(store, config))
    finally:
        await proxy.runner.cleanup()
        await upstream.stop()


async def raw_exchange(
    port: int, data: bytes, *, wait: float = 2.0, must_close: bool = False
) -> bytes:
    """Send ``data`` on a fresh connection; everything read until close or ``wait``.

    With ``must_close``, a server that keeps the connection open for ``wait``
    seconds fails the test instead of ending the read.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    received, closed = b"", True
    try:
        async with asyncio.timeout(wait):
            while chunk := await reader.read(65536):
                received += chunk
    except TimeoutError:
        closed = False
    writer.close()
    assert closed or not must_close, "the server kept the connection open"
    return received


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def body_of(response: bytes) -> Any:
    return json.loads(response.partition(b"\r\n\r\n")[2])
