"""The store connections of a running ``keystile serve``: Redis restarts and lookup floods.

Each test runs the installed ``keystile`` against a redis-server of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import redis.asyncio as aioredis

from sidecar import tokenformat
from sidecar.store.management import AdminStore
from sidecar.verification.issuing import Issued
from tests.kits.processes import serving, write_config
from tests.kits.proxy import Upstream
from tests.kits.redis import RedisProcess, make_config, seed_token

#: Simultaneous requests per wave: more than the pool below holds.
WAVE = 24


@asynccontextmanager
async def keystile(
    tmp_path: Path, redis_url: str, extra: str = "", redis_extra: str = ""
) -> AsyncIterator[tuple[dict[str, int], aiohttp.ClientSession]]:
    """``keystile serve --workers 1`` on ``redis_url`` and a client; ``extra`` ends the
    config, ``redis_extra`` joins its ``[redis]`` table."""
    upstream = Upstream()
    await upstream.start()
    config = tmp_path / "keystile.toml"
    ports = write_config(config, upstream.url, redis_url)
    url_line = f'url = "{redis_url}"'
    text = config.read_text().replace(url_line, f"{url_line}\n{redis_extra}")
    config.write_text(text + extra)
    try:
        async with (
            serving(config, ports["proxy"], "--workers", "1"),
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
        ):
            yield ports, http
    finally:
        await upstream.stop()


async def seeded(redis_url: str, count: int) -> list[Issued]:
    """``count`` tokens with full access, written straight to the store."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    store, config = AdminStore(client), make_config(redis_url)
    issued = [await seed_token(store, config, access={"*": "full"}) for _ in range(count)]
    await client.aclose()
    return issued


async def statuses(
    http: aiohttp.ClientSession, urls_and_tokens: list[tuple[str, str]]
) -> list[int]:
    """The status of each GET, all sent at once."""

    async def one(url: str, bearer: str) -> int:
        async with http.get(url, headers={"Authorization": f"Bearer {bearer}"}) as response:
            return response.status

    return list(await asyncio.gather(*(one(url, bearer) for url, bearer in urls_and_tokens)))


async def test_requests_right_after_a_redis_restart_get_no_503(
    private_redis: RedisProcess, tmp_path: Path
) -> None:
    """Once Redis is back after a restart, uncached proxy requests and admin GETs all succeed."""
    tokens = await seeded(private_redis.url, WAVE)
    extra = "[cache]\nmax_entries = 0\n"  # every request reads the store
    async with keystile(tmp_path, private_redis.url, extra) as (ports, http):
        proxy = f"http://127.0.0.1:{ports['proxy']}/orders/x"
        admin = f"http://127.0.0.1:{ports['admin']}/admin/v1/tokens/"
        wave = [(proxy, t.bearer) for t in tokens]
        wave += [(admin + t.token.client_id, t.bearer) for t in tokens]
        assert set(await statuses(http, wave)) == {200}  # the pool now holds many connections

        client = aioredis.Redis(port=private_redis.port)
        await client.save()  # the restarted server loads the tokens back
        await client.aclose()
        private_redis.stop()
        private_redis.start()

        after = await statuses(http, wave)
    assert after.count(200) == len(wave), after


async def test_a_flood_of_unknown_ids_waits_for_the_pool_and_keeps_the_cache(
    private_redis: RedisProcess, tmp_path: Path
) -> None:
    """150 simultaneous unknown ids over 4 store connections: all 401, the cache stays warm."""
    [issued] = await seeded(private_redis.url, 1)
    # A long lease: a cached token needs the store only if the cache was dropped.
    extra = "[limits]\nrefusal_delay_seconds = 0\n[cache]\nmax_staleness_seconds = 30\n"
    async with keystile(tmp_path, private_redis.url, extra, "max_connections = 4") as (ports, http):
        base = f"http://127.0.0.1:{ports['proxy']}"
        cached = [(f"{base}/orders/x", issued.bearer)]
        await until_cached(http, cached, private_redis)
        flood = [(f"{base}/orders/x", unknown_token()) for _ in range(150)]

        refused = await statuses(http, flood)
        await reset_stats(private_redis)
        assert await statuses(http, cached) == [200]
        store_reads = await hgetall_calls(private_redis)
        metrics = await (await http.get(f"{base}/_keystile/metrics")).text()

    assert set(refused) == {401}, sorted(set(refused))
    assert 'keystile_credential_cache_flushes_total{why="connection lost"}' not in metrics
    assert 'keystile_credential_cache_flushes_total{why="subscribed"} 1.0' in metrics
    assert store_reads == 0  # the cached token was answered without the store


async def until_cached(
    http: aiohttp.ClientSession, request: list[tuple[str, str]], server: RedisProcess
) -> None:
    """Repeat ``request`` until it is answered 200 without a store read (from the cache).

    The first fill can miss the cache: the listener's first subscription drops
    what is being filled while it subscribes.
    """
    for _ in range(50):
        await reset_stats(server)
        assert await statuses(http, request) == [200]
        if await hgetall_calls(server) == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the token never came from the cache")


def unknown_token() -> str:
    """A well-formed token whose client_id no store holds."""
    return tokenformat.format_token(
        "ks", tokenformat.new_client_id(), tokenformat.new_client_secret()
    )


async def reset_stats(server: RedisProcess) -> None:
    client = aioredis.Redis(port=server.port)
    await client.config_resetstat()
    await client.aclose()


async def hgetall_calls(server: RedisProcess) -> int:
    """HGETALL calls (token, user and role reads) since the last ``reset_stats``."""
    client = aioredis.Redis(port=server.port, decode_responses=True)
    stats = await client.info("commandstats")
    await client.aclose()
    return int(stats.get("cmdstat_hgetall", {}).get("calls", 0))
