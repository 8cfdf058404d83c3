"""The aiohttp internals Keystile relies on (sidecar/proxy/aiohttp_internals.py), pinned:
each test fails when an aiohttp upgrade moves or changes one of them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http_exceptions import BadStatusLine
from aiohttp.http_parser import HttpRequestParser
from aiohttp.test_utils import TestServer
from aiohttp.web_protocol import RequestHandler, _ErrInfo

from sidecar.proxy import aiohttp_internals
from sidecar.proxy.listeners import VersionNotSupported
from sidecar.proxy.upstream import session


def test_request_handler_still_has_the_queue_waiter_and_counter_the_listener_reads() -> None:
    """RequestHandler still has the queue, waiter and counter the listener reads and feeds."""
    assert {"_messages", "_waiter", "_request_count", "_manager"} <= set(RequestHandler.__slots__)
    assert "_loop" in BaseProtocol.__slots__
    refusal = _ErrInfo(status=505, exc=VersionNotSupported(), message="m")
    assert (refusal.status, type(refusal.exc), refusal.message) == (505, VersionNotSupported, "m")


class Marked(web.RequestHandler):
    """A handler class that counts the connections it was made for."""

    made = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        Marked.made += 1
        super().connection_made(transport)


class MarkedServer(aiohttp_internals.HandlerServer):
    handler_class = Marked


class MarkedRunner(aiohttp_internals.HandlerRunner):
    server_class = MarkedServer


async def test_a_handler_runner_serves_each_connection_with_its_own_handler_class() -> None:
    """AppRunner._make_server and Server's factory still let a runner choose the handler class."""

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = MarkedRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    made = Marked.made
    try:
        async with (
            aiohttp.ClientSession() as client,
            client.get(f"http://127.0.0.1:{port}/") as got,
        ):
            assert (got.status, await got.text()) == (200, "hello")
    finally:
        await runner.cleanup()
    assert Marked.made == made + 1


@asynccontextmanager
async def answers_once_per_connection() -> AsyncIterator[tuple[int, list[int]]]:
    """A loopback server that answers a connection's first request and closes on its second,
    without a word: a pooled connection that turns out closed. Yields the port and how many
    requests each connection saw."""
    seen: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(0)
        while await reader.readuntil(b"\r\n\r\n"):
            seen[-1] += 1
            if seen[-1] > 1:
                break
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], seen
    finally:
        server.close()
        await server.wait_closed()


async def test_the_websocket_client_never_resends_a_request_on_a_pooled_connection() -> None:
    """ClientSession._retry_connection still exists and, set off, stops aiohttp resending a GET."""
    async with answers_once_per_connection() as (port, seen):
        client = session()
        try:
            async with client.get(f"http://127.0.0.1:{port}/a") as first:
                assert await first.read() == b"ok"
            with pytest.raises(aiohttp.ServerDisconnectedError):
                async with client.get(f"http://127.0.0.1:{port}/b"):
                    pass
        finally:
            await client.close()
    assert seen == [2]  # one connection, and the second GET was not sent again


async def test_an_error_after_our_100_continue_is_still_answered() -> None:
    """A handler failing after our raw 100 Continue still gets its 500, not a cut connection."""
    # After send_continue aiohttp must still take the response as not started.

    async def continue_then_fail(request: web.Request) -> web.Response:
        await aiohttp_internals.send_continue(request)
        raise RuntimeError("after the interim answer")

    async def later(request: web.Request) -> None:
        return None

    app = web.Application()
    app.router.add_post("/", continue_then_fail, expect_handler=later)
    async with TestServer(app) as server:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
        writer.write(head)
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        final = await asyncio.wait_for(reader.readuntil(b"\r\n"), 5)
        writer.close()
    assert interim == aiohttp_internals.CONTINUE
    assert final.startswith(b"HTTP/1.1 500 ")


@pytest.mark.parametrize(
    ("line", "unknown"),
    [(b"GET / HTTP/1.2", True), (b"GET / HTTP/3.0", True), (b"GET / HTTQ/1.1", False)],
)
async def test_llhttp_still_names_an_unknown_version_in_its_refusal(
    line: bytes, unknown: bool
) -> None:
    """aiohttp's parser says "Invalid HTTP version" only for an unknown version (505, not 400)."""
    loop = asyncio.get_running_loop()
    parser: Any = HttpRequestParser(BaseProtocol(loop), loop, 2**16)
    with pytest.raises(BadStatusLine) as refused:
        parser.feed_data(line + b"\r\nHost: x\r\n\r\n")
    assert aiohttp_internals.is_unknown_version(refused.value) is unknown
