"""CPU per request of aiohttp's client against the fast upstream: is it the bottleneck?

Four figures, in microseconds of process CPU per GET (16 at a time): a plain
``ClientSession``, the same with the ten headers Keystile forwards, the
``sidecar.proxy.upstream.session()`` Keystile used for every request until it got
its own client (it still does WebSocket handshakes), and that own client,
``sidecar.proxy.http1client.UpstreamPool``, with the same headers and timeout.

    python bench/upstream.py --port 9000 &
    PYTHONPATH=. .venv/bin/python bench/client_cost.py
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import uvloop
from multidict import CIMultiDict

from sidecar.proxy.http1client import Origin, UpstreamPool, request_head
from sidecar.proxy.upstream import session

URL = "http://127.0.0.1:9000/1"
HEADERS = CIMultiDict(
    [
        ("X-Auth-User", "root"),
        ("X-Auth-Client-Id", "x" * 22),
        ("X-Auth-Access", "full"),
        ("X-Forwarded-For", "127.0.0.1"),
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-Host", "h"),
        ("X-Request-Id", "a" * 32),
        ("Via", "1.1 keystile"),
        ("User-Agent", "wrk"),
        ("Host", "h"),
    ]
)


async def cpu_per_request(client: aiohttp.ClientSession, n: int = 4000, **options: Any) -> float:
    async def one() -> None:
        async with client.request("GET", URL, allow_redirects=False, **options) as response:
            async for _ in response.content.iter_any():
                pass

    start = time.process_time()
    for _ in range(n // 16):
        await asyncio.gather(*(one() for _ in range(16)))
    return (time.process_time() - start) / n * 1e6


async def relay_cpu_per_request(pool: UpstreamPool, n: int = 4000) -> float:
    origin = Origin.of(URL.rsplit("/", 1)[0])
    headers = [(name, value) for name, value in HEADERS.items() if name != "Host"]

    async def one() -> None:
        connection = await pool.acquire(origin, 30)
        try:
            connection.start(request_head("GET", "/1", origin.authority, headers), head_only=False)
            await connection.head(30)
            if connection.ready_body() is None:
                async for _ in connection.body(30):
                    pass
        finally:
            pool.release(connection)

    start = time.process_time()
    for _ in range(n // 16):
        await asyncio.gather(*(one() for _ in range(16)))
    return (time.process_time() - start) / n * 1e6


async def main() -> None:
    plain, keystile = aiohttp.ClientSession(auto_decompress=False), session()
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=30)
    try:
        print(f"plain ClientSession:          {await cpu_per_request(plain):6.0f} us")
        print(
            f"  with the forwarded headers: {await cpu_per_request(plain, headers=HEADERS):6.0f} us"
        )
        figure = await cpu_per_request(keystile, headers=HEADERS, timeout=timeout)
        print(f"Keystile's session():         {figure:6.0f} us")
        pool = UpstreamPool()
        await relay_cpu_per_request(pool, 400)  # connections made before measuring
        print(f"Keystile's UpstreamPool:      {await relay_cpu_per_request(pool):6.0f} us")
        pool.close()
    finally:
        await plain.close()
        await keystile.close()


if __name__ == "__main__":
    uvloop.run(main())
