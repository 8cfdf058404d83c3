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
from collections.abc import AsyncIterator, Callable

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from sidecar.errors import BodyTooLarge, UpstreamTimeout, UpstreamUnavailable
from sidecar.proxy.http1client import (
    BODY_METHODS,
    Connection,
    Origin,
    UnsafeHeader,
    UpstreamPool,
    request_head,
)

Headers = list[tuple[str, str]]
NO_BODY_STATUSES = frozenset({204, 304})


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
    # aiohttp resends an idempotent request once when a pooled connection turns
    # out closed (RFC 9112 section 9.3.1 allows it); the issue asks for never.
    client._retry_connection = False
    return client


async def forward(
    request: web.Request,
    pool: UpstreamPool,
    origin: Origin,
    target: str,
    headers: Headers,
    *,
    timeout: float,  # noqa: ASYNC109 (per-read socket timeouts, not an overall deadline)
    max_body_bytes: int,
    rewrite_response: Callable[[Headers], Headers],
    on_headers: Callable[[float], None],
) -> web.StreamResponse:
    """Send the request upstream and relay its answer; ``on_headers`` gets the latency."""
    body, framing = _request_body(request)
    if framing is not None:
        headers = [*headers, framing]
    try:
        head = request_head(request.method, origin.base_path + target, origin.authority, headers)
    except UnsafeHeader as exc:
        raise UpstreamUnavailable(str(exc)) from None
    started = time.perf_counter()
    connection = await pool.acquire(origin, timeout)
    sender: asyncio.Task[None] | None = None
    try:
        connection.start(head, head_only=request.method == "HEAD")
        if body is not None:
            sender = asyncio.create_task(
                connection.send_body(limited(body, max_body_bytes), chunked=framing == CHUNKED)
            )
            sender.add_done_callback(functools.partial(_sent, connection))
        await connection.head(timeout)
        on_headers(time.perf_counter() - started)
        return await _relay(request, connection, rewrite_response, timeout)
    finally:
        if sender is not None and not _sent_whole(sender):
            # The upstream answered before taking the whole body, or the body
            # failed: what is on that connection is half a request.
            connection.close()
            sender.cancel()
        pool.release(connection)


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
    rewrite_response: Callable[[Headers], Headers],
    timeout: float,  # noqa: ASYNC109
) -> web.StreamResponse:
    raw = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in connection.headers]
    status, reason = connection.status, connection.reason.decode("latin-1") or None
    headers = rewrite_response(raw)
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
