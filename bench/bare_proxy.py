"""The baseline: a bare aiohttp pass-through proxy, no authentication at all.

It does what any honest aiohttp reverse proxy must (drop hop-by-hop headers,
stream both bodies through one pooled keep-alive client session) and nothing
else, so Keystile's ratio against it is the price of authentication and of
Keystile's own header rules. ``--workers N`` runs N processes sharing the port
(SO_REUSEPORT), as Keystile's workers do; ``--uvloop`` matches Keystile's loop.

    python bench/bare_proxy.py --port 8090 --upstream http://127.0.0.1:9000 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from multidict import CIMultiDictProxy

# RFC 9110 section 7.6.1: hop-by-hop fields are not forwarded.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
UPSTREAM = web.AppKey("upstream", str)
CLIENT = web.AppKey("client", aiohttp.ClientSession)


def _end_to_end(headers: CIMultiDictProxy[str]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers.items() if k.lower() not in HOP_BY_HOP]


async def forward(request: web.Request) -> web.StreamResponse:
    url = request.app[UPSTREAM] + request.raw_path
    data = request.content.iter_any() if request.body_exists else None
    async with request.app[CLIENT].request(
        request.method,
        url,
        headers=_end_to_end(request.headers),
        data=data,
        allow_redirects=False,
    ) as upstream:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        response.headers.extend(_end_to_end(upstream.headers))
        if upstream.content_length is not None:
            response.content_length = upstream.content_length
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response


async def _client_ctx(app: web.Application) -> AsyncIterator[None]:
    app[CLIENT] = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type", "Accept"),
    )
    yield
    await app[CLIENT].close()


def build_app(upstream: str) -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")
    app.cleanup_ctx.append(_client_ctx)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


async def serve(host: str, port: int, upstream: str) -> None:
    runner = web.AppRunner(build_app(upstream), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_port=True, backlog=1024).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()


def supervise(argv: list[str], workers: int) -> None:
    """Run ``workers`` single-worker children on the shared port until SIGTERM."""
    command = [sys.executable, __file__, *argv, "--workers", "1"]
    children = [subprocess.Popen(command) for _ in range(workers)]

    def stop(signum: int, frame: object) -> None:
        for child in children:
            child.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        child.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop, as Keystile does")
    args = parser.parse_args()
    if args.workers > 1:
        argv = ["--host", args.host, "--port", str(args.port), "--upstream", args.upstream]
        supervise(argv + (["--uvloop"] if args.uvloop else []), args.workers)
        return
    coroutine = serve(args.host, args.port, args.upstream)
    if args.uvloop:
        import uvloop

        uvloop.run(coroutine)
    else:
        asyncio.run(coroutine)


if __name__ == "__main__":
    main()
