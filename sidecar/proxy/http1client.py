"""The upstream hop's HTTP/1.1 client: pooled keep-alive connections on asyncio
protocols, responses parsed by llhttp (the parser of Node.js, through httptools;
``sidecar.proxy.http1parse``).

aiohttp's client costs about 120 us of CPU per proxied request here (timeout
handles rescheduled on every read, a ClientRequest and ClientResponse built and
their headers copied into multidicts, a StreamReader per body); the proxy only
needs bytes in and bytes out, so this module keeps just that part
(bench/client_cost.py measures both). WebSocket upgrades still use aiohttp's
client (sidecar/proxy/websocket.py).

Semantics kept from the aiohttp client it replaces:

- one pool for every upstream; a connection is reused only after a complete
  exchange that both sides let live (no ``Connection: close``, the request
  body fully sent); idle connections are closed after ``idle_seconds``;
- never a retry: a pooled connection found closed is a 502, like any other
  upstream fault (a POST must not be sent twice);
- ``timeout`` bounds connecting and every wait for upstream bytes;
- informational answers (1xx) are skipped; an upgrade nobody asked for, or
  bytes llhttp refuses (two Content-Lengths, Content-Length beside chunked, a
  bad chunk), are a 502.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools

from sidecar.errors import UpstreamTimeout, UpstreamUnavailable
from sidecar.proxy.http1parse import HIGH_WATER, ResponseParser, Unsolicited


@dataclass(frozen=True)
class Origin:
    """Where an API's upstream lives, parsed once per configured URL."""

    scheme: str
    host: str
    port: int
    #: The Host field the upstream gets (its own authority, as nginx sends it).
    authority: str
    #: The URL's path, put before every forwarded path ("" or "/base").
    base_path: str

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def of(url: str) -> Origin:
        parts = urlsplit(url)
        default = 443 if parts.scheme == "https" else 80
        return Origin(
            scheme=parts.scheme,
            host=parts.hostname or "",
            port=parts.port or default,
            authority=parts.netloc.rpartition("@")[2],
            base_path=parts.path.rstrip("/"),
        )


class UnsafeHeader(ValueError):
    """A header name or value that would break the request's framing (CR, LF)."""


def request_head(method: str, target: str, authority: str, headers: list[tuple[str, str]]) -> bytes:
    """The request line and header block, bytes as the client sent them."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {authority}"]
    lines.extend([f"{name}: {value}" for name, value in headers])
    if any("\r" in line or "\n" in line for line in lines):
        raise UnsafeHeader("a forwarded header holds CR or LF")
    text = "\r\n".join(lines)
    # aiohttp's parser decoded the client's bytes as UTF-8 with surrogateescape.
    return (text + "\r\n\r\n").encode("utf-8", "surrogateescape")


class Connection(ResponseParser, asyncio.Protocol):
    """One keep-alive connection to an upstream, carrying one exchange at a time.

    The answer's state and llhttp's callbacks are the ``ResponseParser`` base;
    this class owns the socket, its flow control, and the waits for the answer.
    """

    def __init__(self, pool: UpstreamPool, origin: Origin) -> None:
        super().__init__()
        self.loop = asyncio.get_running_loop()
        self._pool = pool
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._paused = False

    # -- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self.complete or self.error is not None:
            # Bytes nobody asked for (after a whole answer, or from an idle
            # connection): the connection can no longer be trusted.
            self.keep_alive = False
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, Unsolicited):
                self.close()  # the answer before those bytes stands; the connection does not
            else:
                self._fail(UpstreamUnavailable("upstream answer's headers too large"))
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamUnavailable("upstream switched protocols unasked"))
        except httptools.HttpParserError:
            self._fail(UpstreamUnavailable("upstream sent a malformed answer"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._pool.forget(self)
        if self.head_done and self._until_close and not self.complete:
            self.complete = True  # its body was delimited by the close (RFC 9112 6.3)
            self._wake()
        elif not self.complete:
            self._fail(UpstreamUnavailable("upstream closed the connection"))
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(UpstreamUnavailable("upstream closed the connection"))

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # -- one exchange ----------------------------------------------------------

    def start(self, head: bytes, *, head_only: bool) -> None:
        assert self.transport is not None
        self._begin(head_only=head_only)
        self.transport.write(head)

    async def send_body(self, chunks: AsyncIterator[bytes], *, chunked: bool) -> None:
        """Stream a request body; chunk-encoded when the client's length was not given."""
        async for chunk in chunks:
            if not chunk:
                continue
            self._write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
            if self._paused:
                self._drain = self.loop.create_future()
                await self._drain
        if chunked:
            self._write(b"0\r\n\r\n")

    def _write(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise UpstreamUnavailable("upstream closed the connection")
        self.transport.write(data)

    async def head(self, timeout: float) -> None:  # noqa: ASYNC109 (a per-wait bound)
        """Wait for the status line and headers of the final answer."""
        while not self.head_done:
            await self._wait(timeout)

    async def body(self, timeout: float) -> AsyncIterator[bytes]:  # noqa: ASYNC109
        """The body as it arrives, each wait for more bounded by ``timeout``."""
        while True:
            while self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._buffered <= HIGH_WATER // 4 and self.transport is not None:
                    self.transport.resume_reading()
                yield chunk
            if self.complete:
                return
            await self._wait(timeout)

    async def _wait(self, timeout: float) -> None:  # noqa: ASYNC109
        if self.error is not None:
            raise self.error
        waiter = self._waiter = self.loop.create_future()
        timer = self.loop.call_later(timeout, self._time_out, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _pause_reading(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _time_out(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            waiter.set_exception(UpstreamTimeout("upstream timed out"))

    def _fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self.keep_alive = False
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)
        self.close()

    def fail(self, error: BaseException) -> None:
        """End the exchange from our side (a request body over the limit, say)."""
        self._fail(error)
        if self.transport is not None:
            self.transport.abort()

    @property
    def reusable(self) -> bool:
        return (
            self.complete and self.keep_alive and self.error is None and self.transport is not None
        )

    def close(self) -> None:
        self.keep_alive = False
        if self.transport is not None:
            self.transport.close()


class UpstreamPool:
    """Idle keep-alive connections, per origin; connections are made on demand."""

    def __init__(self, idle_seconds: float = 15.0) -> None:
        self.idle_seconds = idle_seconds
        self._idle: dict[Origin, list[Connection]] = {}
        self._open: set[Connection] = set()
        self._tls: ssl.SSLContext | None = None

    async def acquire(self, origin: Origin, timeout: float) -> Connection:  # noqa: ASYNC109
        idle = self._idle.get(origin)
        if idle:
            # The connection's loop, not get_running_loop(): on Python 3.11 that
            # makes a getpid() syscall, and this runs once per request.
            oldest = idle[-1].loop.time() - self.idle_seconds
            while idle:
                connection = idle.pop()
                if connection.transport is not None and connection.idle_since > oldest:
                    return connection
                connection.close()
        return await self._connect(origin, timeout)

    async def _connect(self, origin: Origin, timeout: float) -> Connection:  # noqa: ASYNC109
        loop = asyncio.get_running_loop()
        tls = self._tls_context() if origin.scheme == "https" else None
        try:
            async with asyncio.timeout(timeout):
                _, connection = await loop.create_connection(
                    lambda: Connection(self, origin),
                    origin.host,
                    origin.port,
                    ssl=tls,
                    server_hostname=origin.host if tls else None,
                )
        except TimeoutError:
            raise UpstreamTimeout("upstream connect timed out") from None
        except OSError as exc:
            raise UpstreamUnavailable(f"upstream: {type(exc).__name__}") from None
        self._open.add(connection)
        return connection

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    def release(self, connection: Connection) -> None:
        """Back to the pool after a clean exchange; closed otherwise."""
        if connection.reusable:
            connection.idle_since = connection.loop.time()
            self._idle.setdefault(connection.origin, []).append(connection)
        else:
            connection.close()

    def forget(self, connection: Connection) -> None:
        self._open.discard(connection)
        idle = self._idle.get(connection.origin)
        if idle and connection in idle:
            idle.remove(connection)

    def close(self) -> None:
        for connection in list(self._open):
            connection.close()
        self._idle.clear()
