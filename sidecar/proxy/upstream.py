"""Forwarding one allowed request to its upstream, streaming both bodies.

Nothing is buffered whole: the request body is passed through chunk by chunk
(counted against ``proxy.max_body_bytes``), and the response is written as it
arrives. Requests are never retried: a POST must not be sent twice, and even
an idempotent one is sent once, so an upstream sees exactly what clients sent.
Upstream faults become 502/504 bodies that never name the upstream host.

``timeout`` bounds connecting and every wait for upstream bytes (as nginx's
``proxy_connect_timeout``/``proxy_read_timeout``), so a long download that
keeps flowing is never cut, while an upstream that stops answering is.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from sidecar.errors import BodyTooLarge, UpstreamTimeout, UpstreamUnavailable
from sidecar.proxy import aiohttp_internals
from sidecar.proxy.http1client import (
    Connection,
    Origin,
    UnsafeHeader,
    UpstreamPool,
    request_head,
)

Headers = list[tuple[str, str]]
NO_BODY_STATUSES = frozenset({204, 304})
#: Methods whose request carries a body by definition: an empty one says ``Content-Length: 0``.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


async def limited(content: aiohttp.StreamReader, limit: int) -> AsyncIterator[bytes]:
    """A streamed request body, failed with ``BodyTooLarge`` once it goes over ``limit``."""
    seen = 0
    async for chunk in content.iter_any():
        seen += len(chunk)
        if seen > limit:
            raise BodyTooLarge(f"request body over {limit} bytes")
        yield chunk


def session(connections: int = 0) -> aiohttp.ClientSession:
    """aiohttp's client, for WebSocket handshakes (sidecar/proxy/websocket.py)."""
    connector = aiohttp.TCPConnector(limit=connections, ttl_dns_cache=300)
    client = aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,  # bytes pass through as the upstream encoded them
        cookie_jar=aiohttp.DummyCookieJar(),  # a proxy keeps no cookies
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type", "Accept"),
    )
    # Requests are never retried, on this hop either (sidecar/proxy/aiohttp_internals.py).
    return aiohttp_internals.never_retry(client)


# Not frozen: one is made per proxied request, and a frozen dataclass's __init__
# (object.__setattr__ per field) costs about 0.4 us more; nothing assigns to it.
@dataclass(slots=True)
class UpstreamRequest:
    """Where one allowed request goes and what it carries there, built by the proxy."""

    origin: Origin
    #: The path and query after the origin's base path, as the client sent them.
    target: str
    #: The fields the upstream gets (``sidecar.headers.upstream_request``).
    headers: Headers
    #: Bounds connecting and every wait for upstream bytes.
    timeout: float
    #: The most request body that is passed on (413 past it).
    max_body_bytes: int


class Exchange:
    """One request sent upstream and its answer, for ``async with``.

    Entering sends the request (its body streams on in the background) and
    waits for the answer's head: its ``headers`` and ``latency`` are then
    known, and ``relay`` sends the answer to the client with the headers
    the caller chose. Leaving gives the connection back to the pool, or closes
    it when what is on it is half an exchange.
    """

    __slots__ = ("_connection", "_pool", "_request", "_sender", "_upstream", "headers", "latency")
    _connection: Connection  # from __aenter__ on

    def __init__(self, request: web.Request, pool: UpstreamPool, upstream: UpstreamRequest) -> None:
        self._request, self._pool, self._upstream = request, pool, upstream
        self._sender: asyncio.Task[None] | None = None
        #: The answer's header fields, as the upstream sent them.
        self.headers: Headers = []
        #: Seconds from asking for a connection to the answer's head.
        self.latency = 0.0

    async def __aenter__(self) -> Exchange:
        request, upstream = self._request, self._upstream
        body, framing = _request_body(request)
        fields = upstream.headers if framing is None else [*upstream.headers, framing]
        origin = upstream.origin
        try:
            head = request_head(
                request.method, origin.base_path + upstream.target, origin.authority, fields
            )
        except UnsafeHeader as exc:
            raise UpstreamUnavailable(str(exc)) from None
        started = time.perf_counter()
        self._connection = connection = await self._pool.acquire(origin, upstream.timeout)
        try:
            connection.start(head, head_only=request.method == "HEAD")
            if body is not None:
                self._sender = _send_body(connection, body, upstream.max_body_bytes, framing)
            await connection.head(upstream.timeout)
        except BaseException:
            self._finish()
            raise
        self.latency = time.perf_counter() - started
        self.headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in connection.headers]
        return self

    async def __aexit__(self, *_: object) -> None:
        self._finish()

    def _finish(self) -> None:
        sender = self._sender
        if sender is not None and not _sent_whole(sender):
            # The upstream answered before taking the whole body, or the body
            # failed: what is on that connection is half a request.
            self._connection.close()
            sender.cancel()
        self._pool.release(self._connection)

    async def relay(self, headers: Headers) -> web.StreamResponse:
        """The answer, with ``headers``, streamed to the client as it arrives."""
        return await _relay(self._request, self._connection, headers, self._upstream.timeout)


def _send_body(
    connection: Connection,
    body: aiohttp.StreamReader,
    limit: int,
    framing: tuple[str, str] | None,
) -> asyncio.Task[None]:
    sender = asyncio.create_task(
        connection.send_body(limited(body, limit), chunked=framing == CHUNKED)
    )
    sender.add_done_callback(functools.partial(_sent, connection))
    return sender


CHUNKED = ("Transfer-Encoding", "chunked")
EMPTY = ("Content-Length", "0")


def _request_body(
    request: web.Request,
) -> tuple[aiohttp.StreamReader | None, tuple[str, str] | None]:
    """The body to send, and the framing field to add for it, if any.

    A client's ``Content-Length`` goes upstream with the other headers; a body
    without one is chunked; a POST, PUT or PATCH without a body says its length
    is 0 (RFC 9110 section 8.6, as aiohttp's client did).
    """
    if not request.body_exists:
        empty = request.method in BODY_METHODS and request.content_length is None
        return None, EMPTY if empty else None
    if request.content_length is not None:
        return request.content, None
    return request.content, CHUNKED


def _sent_whole(sender: asyncio.Task[None]) -> bool:
    return sender.done() and not sender.cancelled() and sender.exception() is None


def _sent(connection: Connection, sender: asyncio.Task[None]) -> None:
    """A failed request body ends the exchange: over the limit (413), or broken (502)."""
    if sender.cancelled() or (error := sender.exception()) is None:
        return
    if not isinstance(error, BodyTooLarge | UpstreamUnavailable):
        error = UpstreamUnavailable(f"request body: {type(error).__name__}")
    connection.fail(error)


async def _relay(
    request: web.Request,
    connection: Connection,
    headers: Headers,
    timeout: float,  # noqa: ASYNC109
) -> web.StreamResponse:
    status, reason = connection.status, connection.reason.decode("latin-1") or None
    bodiless = request.method == "HEAD" or status in NO_BODY_STATUSES
    if not bodiless and (whole := connection.ready_body()) is not None:
        # The whole answer is here (the common, small case): a Response goes out
        # as one write of status, headers and body; its length is the body's.
        return web.Response(status=status, reason=reason, headers=headers, body=whole)
    response = web.StreamResponse(status=status, reason=reason, headers=CIMultiDict(headers))
    if bodiless:
        # RFC 9110 sections 9.3.2, 15.3.5, 15.4.5: whatever follows is not this body.
        await response.prepare(request)
        await response.write_eof()
        return response
    await response.prepare(request)
    try:
        async for chunk in connection.body(timeout):
            await response.write(chunk)
    except (UpstreamUnavailable, UpstreamTimeout, BodyTooLarge):
        # The status line is gone already: the only honest signal left is to
        # cut the connection, so the client sees a truncated body, not a short one.
        if request.transport is not None:
            request.transport.abort()
        return response
    await response.write_eof()
    return response
