"""The upstream hop's own HTTP/1.1 client (sidecar/proxy/http1client.py), on the wire.

A scripted upstream on a real loopback socket answers each request path with
exact bytes (what aiohttp's test server would never send: HTTP/1.0 bodies
delimited by the close, 103 before the answer, two Content-Lengths...) and
records every connection and request; the proxy in front of it is the real
one, with a real client and a real redis-server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from multidict import CIMultiDictProxy

from sidecar.proxy.http1client import UnsafeHeader, request_head
from sidecar.store.management import AdminStore
from tests.kits.proxy import Proxy, raw_exchange, start_proxy
from tests.kits.redis import make_config, seed_token

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

#: Path -> (answer bytes, close the connection after it).
SCRIPT: dict[str, tuple[bytes, bool]] = {
    "/ok": (OK, False),
    "/close": (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", True),
    "/chunked": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        False,
    ),
    "/http10": (b"HTTP/1.0 200 OK\r\nX-Kind: old\r\n\r\nuntil the close", True),
    "/early-hints": (
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" + OK,
        False,
    ),
    "/two-lengths": (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", False),
    "/length-and-chunked": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n",
        False,
    ),
    "/extra-bytes": (OK + b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nsmugg", False),
    "/head": (b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n", False),
    "/short": (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nonly", True),
    "/idle-close": (OK, False),
    "/huge-head": (b"HTTP/1.1 200 OK\r\n" + b"X-Filler: " + b"f" * 70_000 + b"\r\n\r\n", True),
}


@dataclass
class Seen:
    connection: int
    head: bytes
    body: bytes


@dataclass
class ScriptedUpstream:
    """Answers from SCRIPT; closes idle connections when told to."""

    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0
    _server: asyncio.Server | None = None
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    def close_idle(self) -> None:
        for writer in self._writers:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        self._writers.append(writer)
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                body = await _read_body(reader, head)
                self.seen.append(Seen(number, head, body))
                path = head.split(b" ")[1].decode()
                answer, close = SCRIPT.get(path, (OK, False))
                writer.write(answer)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


async def _read_body(reader: asyncio.StreamReader, head: bytes) -> bytes:
    lines = head.decode("latin-1").lower().split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    if "content-length" in fields:
        return await reader.readexactly(int(fields["content-length"]))
    if fields.get("transfer-encoding") != "chunked":
        return b""
    body = b""
    while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
        body += await reader.readexactly(size)
        await reader.readexactly(2)
    await reader.readuntil(b"\r\n")
    return body


@dataclass
class Relay:
    upstream: ScriptedUpstream
    proxy: Proxy
    bearer: dict[str, str]

    def url(self, path: str) -> str:
        return f"{self.proxy.url}/up{path}"


@pytest.fixture
async def relay(redis_url: str, store: AdminStore) -> AsyncIterator[Relay]:
    upstream = ScriptedUpstream()
    await upstream.start()
    apis = [{"name": "up", "prefix": "/up", "upstream": upstream.url, "timeout": 2}]
    config = make_config(redis_url, apis)
    proxy = await start_proxy(config, redis_url)
    issued = await seed_token(store, config, access={"up": "full"})
    try:
        yield Relay(upstream, proxy, {"Authorization": f"Bearer {issued.bearer}"})
    finally:
        await proxy.runner.cleanup()
        await upstream.stop()


async def exchange(
    relay: Relay,
    path: str,
    method: str = "GET",
    data: bytes | AsyncIterator[bytes] | None = None,
    skip: tuple[str, ...] = (),
) -> tuple[int, CIMultiDictProxy[str], bytes]:
    """One request through the proxy: the status, headers and body the client got."""
    async with (
        aiohttp.ClientSession(skip_auto_headers=skip) as http,
        http.request(method, relay.url(path), headers=relay.bearer, data=data) as answer,
    ):
        return answer.status, answer.headers, await answer.read()


async def fetch(
    relay: Relay,
    path: str,
    method: str = "GET",
    data: bytes | AsyncIterator[bytes] | None = None,
    skip: tuple[str, ...] = (),
) -> tuple[int, bytes]:
    status, _, body = await exchange(relay, path, method, data, skip)
    return status, body


async def test_keep_alive_connection_is_reused(relay: Relay) -> None:
    """Three requests in a row travel on one upstream connection."""
    for _ in range(3):
        assert await fetch(relay, "/ok") == (200, b"ok")
    assert [seen.connection for seen in relay.upstream.seen] == [1, 1, 1]


async def test_whole_chunked_answer_goes_out_with_its_length(relay: Relay) -> None:
    """A chunked answer that arrived whole is sent on with a Content-Length, not re-chunked."""
    answer = await raw_exchange(
        relay.proxy.port,
        b"GET /up/chunked HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        + f"Authorization: {relay.bearer['Authorization']}\r\n\r\n".encode(),
        must_close=True,
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    fields = dict(line.lower().split(b": ", 1) for line in head.split(b"\r\n")[1:])
    assert body == b"hello world"
    assert fields[b"content-length"] == b"11"
    assert b"transfer-encoding" not in fields


async def test_connection_close_answer_is_not_reused(relay: Relay) -> None:
    """After an answer saying ``Connection: close`` the next request opens a new connection."""
    for _ in range(2):
        assert await fetch(relay, "/close") == (200, b"ok")
    assert [seen.connection for seen in relay.upstream.seen] == [1, 2]


async def test_upstream_closing_an_idle_connection_costs_no_request(relay: Relay) -> None:
    """An upstream that drops a pooled connection: the next request goes on a new one, 200."""
    assert await fetch(relay, "/idle-close") == (200, b"ok")
    relay.upstream.close_idle()
    await asyncio.sleep(0.1)  # the FIN reaches the pool
    assert await fetch(relay, "/ok") == (200, b"ok")
    assert [seen.connection for seen in relay.upstream.seen] == [1, 2]


async def test_chunked_answer_reaches_the_client_whole(relay: Relay) -> None:
    """A chunked answer from the upstream reaches the client whole."""
    assert await fetch(relay, "/chunked") == (200, b"hello world")


async def test_http10_body_delimited_by_close(relay: Relay) -> None:
    """An HTTP/1.0 answer without a length ends with the connection; every byte arrives."""
    status, headers, body = await exchange(relay, "/http10")
    assert (status, headers["X-Kind"], body) == (200, "old", b"until the close")


async def test_informational_answer_is_skipped(relay: Relay) -> None:
    """A 103 before the answer is not the answer: the client gets the 200 and its body."""
    assert await fetch(relay, "/early-hints") == (200, b"ok")


@pytest.mark.parametrize("path", ["/two-lengths", "/length-and-chunked"])
async def test_ambiguous_framing_from_upstream_is_502(relay: Relay, path: str) -> None:
    """An answer whose length could be read two ways is refused, never relayed."""
    status, body = await fetch(relay, path)
    assert status == 502 and b"bad_gateway" in body
    assert await fetch(relay, "/ok") == (200, b"ok")  # and the next request is fine


async def test_answer_headers_over_64_kib_are_502(relay: Relay) -> None:
    """An upstream that sends headers without end is cut off, not buffered until the timeout."""
    status, body = await fetch(relay, "/huge-head")
    assert status == 502 and b"bad_gateway" in body


async def test_bytes_after_an_answer_are_never_a_next_answer(relay: Relay) -> None:
    """Extra bytes after a complete answer poison that connection: the next request gets its own."""
    assert await fetch(relay, "/extra-bytes") == (200, b"ok")
    await asyncio.sleep(0.05)
    assert await fetch(relay, "/ok") == (200, b"ok")
    assert [seen.connection for seen in relay.upstream.seen] == [1, 2]


async def test_head_answer_leaves_no_body_behind(relay: Relay) -> None:
    """A HEAD answer announcing 5,000 bytes: none is awaited, and the next GET is answered."""
    status, headers, body = await exchange(relay, "/head", "HEAD")
    assert (status, headers["Content-Length"], body) == (200, "5000", b"")
    assert await fetch(relay, "/ok") == (200, b"ok")


async def test_truncated_answer_is_cut_not_shortened(relay: Relay) -> None:
    """An upstream that closes 6 bytes short: the client sees a broken body, not a short one."""
    with pytest.raises(aiohttp.ClientPayloadError):
        await fetch(relay, "/short")


async def test_request_bodies_are_framed_for_the_upstream(relay: Relay) -> None:
    """A sized body goes with its length, an unsized one chunked, no body as Content-Length: 0."""

    async def pieces() -> AsyncIterator[bytes]:
        yield b"abc"
        yield b"def"

    assert (await fetch(relay, "/ok", "POST", data=b"sized"))[0] == 200
    assert (await fetch(relay, "/ok", "POST", data=pieces()))[0] == 200
    assert (await fetch(relay, "/ok", "POST", skip=("Content-Length",)))[0] == 200
    sized, streamed, empty = relay.upstream.seen
    assert sized.body == b"sized" and b"content-length: 5\r\n" in sized.head.lower()
    assert streamed.body == b"abcdef" and b"transfer-encoding: chunked" in streamed.head.lower()
    assert b"content-length: 0\r\n" in empty.head.lower() and empty.body == b""
    assert sized.head.startswith(b"POST /ok HTTP/1.1\r\nHost: 127.0.0.1:")


def test_request_head_refuses_cr_or_lf() -> None:
    """A value that would start a second header (or request) is never written."""
    assert (
        request_head("GET", "/", "h", [("X-A", "1")])
        == b"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\n"
    )
    for bad in ("1\r\nX-Evil: 1", "1\nX", "1\rX"):
        with pytest.raises(UnsafeHeader):
            request_head("GET", "/", "h", [("X-A", bad)])
