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

import functools
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from sidecar.errors import BodyTooLarge, UpstreamTimeout, UpstreamUnavailable

Headers = list[tuple[str, str]]
NO_BODY_STATUSES = frozenset({204, 304})


class BodyLimit:
    """Counts a streamed request body; remembers when it went over the limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen = 0
        self.exceeded = False

    async def stream(self, content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
        async for chunk in content.iter_any():
            self.seen += len(chunk)
            if self.seen > self.limit:
                self.exceeded = True
                raise BodyTooLarge(f"request body over {self.limit} bytes")
            yield chunk


def session(connections: int = 0) -> aiohttp.ClientSession:
    """One pooled, keep-alive client for every upstream of this process."""
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


@functools.lru_cache(maxsize=256)
def read_timeout(seconds: float) -> aiohttp.ClientTimeout:
    """One immutable timeout per configured value, not one per request."""
    return aiohttp.ClientTimeout(total=None, sock_connect=seconds, sock_read=seconds)


async def forward(
    request: web.Request,
    client: aiohttp.ClientSession,
    url: URL,
    headers: Headers,
    *,
    timeout: float,  # noqa: ASYNC109 (per-read socket timeouts, not an overall deadline)
    max_body_bytes: int,
    rewrite_response: Callable[[Headers], Headers],
    on_headers: Callable[[float], None],
) -> web.StreamResponse:
    """Send the request upstream and relay its answer; ``on_headers`` gets the latency."""
    limit = BodyLimit(max_body_bytes)
    data = limit.stream(request.content) if request.body_exists else None
    started = time.perf_counter()
    try:
        async with client.request(
            request.method,
            url,
            headers=CIMultiDict(headers),
            data=data,
            allow_redirects=False,
            timeout=read_timeout(timeout),
        ) as upstream:
            on_headers(time.perf_counter() - started)
            return await _relay(request, upstream, rewrite_response)
    except TimeoutError as exc:
        raise UpstreamTimeout("upstream timed out") from exc
    except aiohttp.ClientError as exc:
        if limit.exceeded:
            raise BodyTooLarge(f"request body over {max_body_bytes} bytes") from None
        raise UpstreamUnavailable(f"upstream: {type(exc).__name__}") from exc


async def _relay(
    request: web.Request,
    upstream: aiohttp.ClientResponse,
    rewrite_response: Callable[[Headers], Headers],
) -> web.StreamResponse:
    raw = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in upstream.raw_headers]
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
    for name, value in rewrite_response(raw):
        response.headers.add(name, value)
    await response.prepare(request)
    if request.method == "HEAD" or upstream.status in NO_BODY_STATUSES:
        # RFC 9110 sections 9.3.2, 15.3.5, 15.4.5: whatever follows is not this body.
        await response.write_eof()
        return response
    try:
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
    except (aiohttp.ClientError, TimeoutError):
        # The status line is gone already: the only honest signal left is to
        # cut the connection, so the client sees a truncated body, not a short one.
        if request.transport is not None:
            request.transport.abort()
        return response
    await response.write_eof()
    return response
