"""Benchmark: the web console's token page at 100,000 tokens, as its browser asks for it.

    .venv/bin/python bench/console_page.py [--tokens 100000] [--repeat 15]

Seeds the tokens as bench/admin_search.py does (private redis-server, the
store's own format), serves the admin app on loopback, signs in through
``POST /console/v1/session`` and then times, with the session cookie, the
calls one view of the token list makes: the page of tokens and the grand
total together (as the page's script does), then the roles for the filter.
The time is server-side work plus loopback HTTP, no rendering. The goal is
under 300 ms for a search with a two-key sort.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.admin_search import _summary, admin_app, seed, start_redis

VIEWS = {
    "landing page (default order)": "limit=50",
    "q=nightly, order=user,-created_at": "q=nightly&order=user%2C-created_at&limit=50",
    "q=deploy, order=-last_used_at,description, revoked hidden": (
        "q=deploy&order=-last_used_at%2Cdescription&status=active%2Cexpired&limit=50"
    ),
    "order=status,expires_at, page 1,000": "order=status%2Cexpires_at&limit=50&offset=50000",
}


async def view(session: aiohttp.ClientSession, base: str, query: str) -> float:
    """One token-list view: tokens and total at once, then the roles; milliseconds."""
    started = time.perf_counter()

    async def get(path: str) -> None:
        async with session.get(base + path) as response:
            body = await response.read()
            assert response.status == 200, body

    await asyncio.gather(get(f"/admin/v1/tokens?{query}"), get("/admin/v1/tokens?limit=1"))
    await get("/admin/v1/roles")
    return (time.perf_counter() - started) * 1000


async def measure(url: str, count: int, repeat: int) -> dict[str, object]:
    results: dict[str, object] = {"tokens": count + 1}
    # unsafe: the jar keeps cookies of an IP address host (127.0.0.1).
    jar = aiohttp.CookieJar(unsafe=True)
    async with admin_app(url) as (base, root), aiohttp.ClientSession(cookie_jar=jar) as session:
        async with session.post(f"{base}/console/v1/session", json={"token": root.bearer}) as r:
            assert r.status == 200, await r.text()
        first = await view(session, base, "limit=50")
        results["first view (waits for the start-up index load), ms"] = round(first, 1)
        for name, query in VIEWS.items():
            results[name] = _summary([await view(session, base, query) for _ in range(repeat)])
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        process, port = start_redis(Path(workdir))
        try:
            url = f"redis://127.0.0.1:{port}/0"
            seed(url, args.tokens)
            results = asyncio.run(measure(url, args.tokens, args.repeat))
        finally:
            process.terminate()
            process.wait(10)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
