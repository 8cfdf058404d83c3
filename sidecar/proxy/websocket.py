"""WebSocket pass-through: after the credential check, a tunnel of messages.

The upgrade is answered only once the upstream accepted its own handshake
(with the identity headers, without the credential), so a client never holds
an open socket the upstream refused. Messages are relayed as they come, both
ways; when either side closes, the other is closed with the same code.
The subprotocol the upstream picked is the one the client is told.
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from sidecar.errors import UpstreamTimeout, UpstreamUnavailable

Headers = list[tuple[str, str]]

#: Handshake fields each side makes its own (RFC 6455 section 4.1).
HANDSHAKE = frozenset(
    {
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "sec-websocket-accept",
    }
)


def is_upgrade(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").strip().lower() == "websocket"


def subprotocols(request: web.Request) -> list[str]:
    offered = ",".join(request.headers.getall("Sec-WebSocket-Protocol", []))
    return [p.strip() for p in offered.split(",") if p.strip()]


async def relay(
    request: web.Request,
    client: aiohttp.ClientSession,
    url: URL,
    headers: Headers,
    *,
    timeout: float,  # noqa: ASYNC109 (bounds the upstream handshake only)
) -> web.WebSocketResponse:
    sent = CIMultiDict((n, v) for n, v in headers if n.lower() not in HANDSHAKE)
    try:
        async with asyncio.timeout(timeout):
            upstream = await client.ws_connect(
                url, headers=sent, protocols=subprotocols(request), max_msg_size=0
            )
    except TimeoutError as exc:
        raise UpstreamTimeout("upstream WebSocket handshake timed out") from exc
    except aiohttp.ClientError as exc:
        raise UpstreamUnavailable(f"upstream WebSocket: {type(exc).__name__}") from exc
    async with upstream:
        protocols = (upstream.protocol,) if upstream.protocol else ()
        downstream = web.WebSocketResponse(protocols=protocols, max_msg_size=0)
        await downstream.prepare(request)
        await _tunnel(downstream, upstream)
        return downstream


async def _tunnel(
    downstream: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse
) -> None:
    pumps = [
        asyncio.create_task(_pump(downstream, upstream)),
        asyncio.create_task(_pump(upstream, downstream)),
    ]
    try:
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
    code = upstream.close_code or downstream.close_code or aiohttp.WSCloseCode.OK
    await downstream.close(code=code)
    await upstream.close(code=code)


async def _pump(
    source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
) -> None:
    async for message in source:
        if message.type is aiohttp.WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif message.type is aiohttp.WSMsgType.BINARY:
            await sink.send_bytes(message.data)
