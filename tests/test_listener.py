"""What a connection may hold on a listener, through raw sockets: idle and slow
clients, the connection limit, and request lines that are not HTTP/1.0 or 1.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sidecar.config import ListenerConfig
from sidecar.proxy.listeners import Occupancy, QuietServer
from sidecar.store.management import AdminStore
from tests.kits.processes import serving, write_config
from tests.kits.proxy import Env, body_of, raw_exchange, running, status_of

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def get(path: str, token: str | None = None) -> bytes:
    """A keep-alive GET of ``path`` with ``token`` as its bearer credential, if any."""
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return f"GET {path} HTTP/1.1\r\nHost: keystile.test\r\n{auth}\r\n".encode()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One whole response with a Content-Length: its status and its body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    fields = dict(
        line.split(": ", 1) for line in head.decode("latin-1").split("\r\n")[1:] if ": " in line
    )
    body = await asyncio.wait_for(reader.readexactly(int(fields["Content-Length"])), 5)
    return status_of(head), body


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closes within ``seconds``, and what it sent before."""
    received = b""
    try:
        async with asyncio.timeout(seconds):
            while chunk := await reader.read(65536):
                received += chunk
    except TimeoutError:
        return False, received
    except ConnectionResetError:
        pass
    return True, received


async def hold(port: int, request: bytes) -> Connection:
    """A connection the server admitted: one keep-alive request answered on it."""
    for _ in range(20):  # a connection closed just before may not be counted out yet
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        try:
            await read_response(reader)
            return reader, writer
        except (asyncio.IncompleteReadError, ConnectionResetError):
            writer.close()
            await asyncio.sleep(0.1)
    raise AssertionError("no connection was admitted")


async def refused_at_once(port: int) -> bool:
    """A new connection is closed by the server without a byte of answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    closed, received = await closed_within(reader, 2)
    writer.close()
    return closed and received == b""


async def dribble(port: int, head: bytes, interval: float, seconds: float) -> tuple[bool, bytes]:
    """Send ``head``, then one header byte every ``interval``; closed, and what came back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    loop = asyncio.get_running_loop()
    give_up = loop.time() + seconds
    try:
        while loop.time() < give_up:
            closed, received = await closed_within(reader, interval)
            if closed or received:
                return (await closed_within(reader, 2))[0] or closed, received
            writer.write(b"X")
    except ConnectionResetError:
        return True, b""
    finally:
        writer.close()
    return False, b""


@asynccontextmanager
async def proxy_with(redis_url: str, store: AdminStore, **keys: float) -> AsyncIterator[Env]:
    """The proxy of tests/kits/proxy.py with these ``[proxy]`` keys."""
    async with running(redis_url, store, proxy=keys) as env:
        yield env


@pytest.fixture
async def env_idle(redis_url: str, store: AdminStore) -> AsyncIterator[Env]:
    """The proxy with idle_timeout 0.5 s and a roomy header_timeout."""
    async with proxy_with(redis_url, store, idle_timeout=0.5, header_timeout=5) as env:
        yield env


# -- idle and slow clients ------------------------------------------------------------


async def test_a_connection_that_sends_nothing_is_closed_after_idle_timeout(
    redis_url: str, store: AdminStore
) -> None:
    """A client that connects and sends nothing is closed, silently, after idle_timeout."""
    async with proxy_with(redis_url, store, idle_timeout=0.3, header_timeout=30) as env:
        reader, writer = await asyncio.open_connection("127.0.0.1", env.proxy.port)
        closed, received = await closed_within(reader, 5)
        writer.close()
    assert (closed, received) == (True, b"")


async def test_slowloris_is_closed_after_header_timeout_though_bytes_keep_coming(
    redis_url: str, store: AdminStore
) -> None:
    """A head trickled past header_timeout gets 408, never forwarded; one in time is served."""
    async with proxy_with(redis_url, store, header_timeout=0.5, idle_timeout=60) as env:
        reader, writer = await asyncio.open_connection("127.0.0.1", env.proxy.port)
        request = get("/orders/pieces", env.tokens.full)
        for start in range(0, len(request), 16):  # the request line too comes in pieces
            writer.write(request[start : start + 16])
            await asyncio.sleep(0.01)
        assert (await read_response(reader))[0] == 200
        writer.close()
        head = b"GET /orders/slow HTTP/1.1\r\nHost: keystile.test\r\nX-Slow: "
        closed, received = await dribble(env.proxy.port, head, interval=0.1, seconds=8)
        assert closed
        assert status_of(received) == 408
        assert body_of(received)["error"] == "request_timeout"
        assert [seen.raw_path for seen in env.upstream.seen] == ["/o/pieces"]


async def test_keep_alive_connection_serves_then_closes_after_idle_timeout(env_idle: Env) -> None:
    """Requests on one keep-alive connection are answered; idle_timeout after, it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", env_idle.proxy.port)
    for path in ("/orders/1", "/orders/2"):
        writer.write(get(path, env_idle.tokens.full))
        assert (await read_response(reader))[0] == 200
    closed, received = await closed_within(reader, 5)
    writer.close()
    assert (closed, received) == (True, b"")
    assert [seen.raw_path for seen in env_idle.upstream.seen] == ["/o/1", "/o/2"]


# -- the connection limit ---------------------------------------------------------------


async def test_past_max_connections_a_new_connection_is_closed_at_once(
    redis_url: str, store: AdminStore
) -> None:
    """With max_connections held, one more is closed at once; once one ends, requests work."""
    async with proxy_with(redis_url, store, max_connections=2) as env:
        port, request = env.proxy.port, get("/orders/1", env.tokens.full)
        held = [await hold(port, request) for _ in range(2)]
        assert await refused_at_once(port)
        reader, writer = held[0]
        writer.write(request)
        assert (await read_response(reader))[0] == 200  # the held ones are still served
        held[1][1].close()
        reader, writer = await hold(port, request)
        writer.close()
        for _, held_writer in held:
            held_writer.close()


# -- HTTP versions ------------------------------------------------------------------------


async def test_other_http_versions_get_505_and_are_never_forwarded(env: Env) -> None:
    """HTTP/2.0, HTTP/3.0 and HTTP/1.2 request lines get a JSON 505 (RFC 9110 15.6.6)."""
    for version in ("HTTP/2.0", "HTTP/3.0", "HTTP/1.2"):
        sent = (
            f"GET /orders/1 {version}\r\nHost: x\r\nAuthorization: Bearer {env.tokens.full}\r\n\r\n"
        )
        answer = await raw_exchange(env.proxy.port, sent.encode(), wait=3, must_close=True)
        assert answer.startswith(b"HTTP/1.")
        assert status_of(answer) == 505, version
        assert body_of(answer)["error"] == "http_version_not_supported"
    assert env.upstream.seen == []


async def test_http_0_9_request_lines_get_400_at_once(env: Env) -> None:
    """``GET /x`` with no version, alone or with a blank line, gets 400 and a close."""
    for sent in (b"GET /orders/1\r\n", b"GET /orders/1\r\n\r\n", b"GET /orders/1 HTTP/0.9\r\n\r\n"):
        answer = await raw_exchange(env.proxy.port, sent, wait=3, must_close=True)
        assert status_of(answer) == 400, sent
        assert body_of(answer)["error"] == "invalid_request"
    assert env.upstream.seen == []


# -- through `keystile serve`: both listeners -------------------------------------------


@asynccontextmanager
async def keystile(tmp_path: Path, **tables: dict[str, float]) -> AsyncIterator[dict[str, int]]:
    """``keystile serve --workers 1`` with these ``proxy`` and ``admin`` keys; its ports."""
    upstream = TestServer(web.Application(), host="127.0.0.1")
    await upstream.start_server()
    config = tmp_path / "keystile.toml"
    ports = write_config(config, str(upstream.make_url("")).rstrip("/"), **tables)
    try:
        async with serving(config, ports["proxy"], "--workers", "1"):
            yield ports
    finally:
        await upstream.close()


OPENAPI = get("/admin/v1/openapi.json")
HEALTHZ = get("/_keystile/healthz")


async def test_serve_bounds_each_listener_by_its_own_max_connections(tmp_path: Path) -> None:
    """``keystile serve`` holds proxy.max_connections on the proxy and admin's on the admin API."""
    tables: dict[str, Any] = {"proxy": {"max_connections": 1}, "admin": {"max_connections": 2}}
    async with keystile(tmp_path, **tables) as ports:
        proxy = [await hold(ports["proxy"], HEALTHZ)]
        assert await refused_at_once(ports["proxy"])
        admin = [await hold(ports["admin"], OPENAPI) for _ in range(2)]
        assert await refused_at_once(ports["admin"])
        admin.pop()[1].close()
        admin.append(await hold(ports["admin"], OPENAPI))
        for _, writer in proxy + admin:
            writer.close()


async def test_serve_closes_idle_and_slow_clients_of_the_admin_api(tmp_path: Path) -> None:
    """The admin listener closes a silent client after idle_timeout and a slow head with 408."""
    admin = {"idle_timeout": 0.6, "header_timeout": 0.3}
    async with keystile(tmp_path, admin=admin) as ports:
        reader, writer = await asyncio.open_connection("127.0.0.1", ports["admin"])
        assert await closed_within(reader, 5) == (True, b"")
        writer.close()
        head = b"GET /admin/v1/openapi.json HTTP/1.1\r\nX-Slow: "
        closed, received = await dribble(ports["admin"], head, interval=0.1, seconds=8)
        assert closed and status_of(received) == 408


# -- the head queue seen through sidecar/proxy/aiohttp_internals.py (pinned in its own tests) ------


class Wire(asyncio.Transport):
    """The server's side of a connection, recording what the server writes."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


async def test_body_bytes_read_before_the_request_is_handled_are_not_a_new_head() -> None:
    """Body bytes read before the handler runs are the body, not an HTTP/0.9 request line."""
    # uvloop reads a socket up to 32 times in a row before a handler gets to run.

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    server = QuietServer(echo, occupancy=Occupancy(ListenerConfig()))
    handler, wire = server(), Wire()
    handler.connection_made(wire)
    await asyncio.sleep(0.01)  # the connection now waits for its first request
    handler.data_received(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n")
    handler.data_received(b"a b\nc d\n")  # before the handler's task has run
    for _ in range(50):
        await asyncio.sleep(0.01)
    assert wire.written.count(b"HTTP/1.") == 1
    assert wire.written.startswith(b"HTTP/1.1 200 OK")
    assert wire.written.endswith(b"\r\n\r\na b\nc d\n")
    handler.connection_lost(None)
