"""A flushed or restored store is noticed: every cache and the admin index drop at once."""

from __future__ import annotations

import asyncio
import time

import pytest

from sidecar.store import keys
from sidecar.store.epoch import EpochWatch
from tests.kits.admin import Harness, harness
from tests.kits.redis import RedisProcess, seed_token

#: Longest wait for the listener's next check (a quarter of the 1 s lease, with room).
PATIENCE = 3.0


async def until_status(admin: Harness, token: str, want: int) -> int:
    deadline = time.monotonic() + PATIENCE
    while (got := await admin.proxy_get("/orders/1", token)) != want:
        if time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.02)
    return got


async def test_flushall_stops_a_cached_token_and_empties_the_admin_list(
    redis_server: RedisProcess, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """After FLUSHALL a token served from the cache gets 401, and the list shows the empty store."""
    caplog.set_level("WARNING", logger="keystile.invalidation")
    async with harness(redis_url, cache={"ttl_seconds": 3600}) as admin:
        alice = await admin.token(user="root", access={"orders": "read"})
        assert await admin.proxy_get("/orders/1", alice["token"]) == 200  # now cached
        assert len((await admin.call("GET", "/tokens")).body["items"]) == 2

        redis_server.flush()
        refused = await until_status(admin, alice["token"], 401)
        root = await seed_token(admin.store, admin.config, user="root", access={"admin": "full"})
        listed = await admin.call("GET", "/tokens", token=root.bearer)

    assert refused == 401
    assert [row["client_id"] for row in listed.body["items"]] == [root.token.client_id]
    assert "the store was flushed or restored" in caplog.text


async def test_every_process_agrees_on_one_epoch(redis_url: str) -> None:
    """Two processes' listeners write the epoch once (SET NX) and remember the same value."""
    async with harness(redis_url) as admin:
        await asyncio.sleep(0.3)  # both listeners have made their first check
        stored = await admin.store.redis.get(keys.EPOCH)
        first = await EpochWatch().read(admin.store.redis)

    assert stored is not None and len(stored) == 32
    assert first[1] == stored


def test_a_different_epoch_means_a_replaced_store() -> None:
    """An epoch other than the one remembered (a FLUSHALL, another store) is a replaced store."""
    watch = EpochWatch()
    assert watch.replaced("a" * 32, generation=7, newest_seen=-1) is None

    assert watch.replaced("b" * 32, generation=9, newest_seen=7) is not None
    assert watch.replaced("b" * 32, generation=9, newest_seen=9) is None


def test_a_generation_gone_back_means_a_restored_store() -> None:
    """Same epoch but a counter below the newest change seen: a snapshot restored from before."""
    watch = EpochWatch()
    watch.replaced("a" * 32, generation=10, newest_seen=-1)

    why = watch.replaced("a" * 32, generation=4, newest_seen=10)

    assert why is not None and "went back" in why
