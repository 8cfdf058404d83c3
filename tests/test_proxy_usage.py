"""``last_used_at``: recorded after a successful check, written in batches, at most
once per token per interval, never on the request's critical path."""

from __future__ import annotations

import asyncio

import aiohttp
import redis.asyncio as aioredis

from sidecar import clock
from sidecar.store.management import AdminStore
from sidecar.verification.usage import UsageRecorder
from tests.kits.proxy import running
from tests.kits.redis import Clock, make_config, seed_token


async def test_proxied_request_sets_last_used_at(redis_url: str, store: AdminStore) -> None:
    """A token used through the proxy gets last_used_at within the interval plus a flush."""
    async with running(redis_url, store) as env:
        before = await store.get_token(env.tokens.full_id)
        async with aiohttp.ClientSession() as http:
            await (await http.get(f"{env.url}/orders/1", headers=env.bearer())).read()
        for _ in range(100):
            token = await store.get_token(env.tokens.full_id)
            if token is not None and token.last_used_at:
                break
            await asyncio.sleep(0.05)
    assert before is not None and before.last_used_at is None
    assert token is not None and token.last_used_at is not None
    assert clock.from_rfc3339(token.last_used_at) <= clock.now()


async def test_many_uses_in_one_interval_are_one_write(store: AdminStore) -> None:
    """A hundred uses within the interval queue one write; a use after it queues another."""
    cfg = make_config()
    issued = await seed_token(store, cfg)
    ticks = Clock()
    recorder = UsageRecorder(store, interval=60, monotonic=ticks)
    for _ in range(100):
        recorder.note(issued.token.client_id)
    assert await recorder.flush() == 1
    ticks.now += 30
    recorder.note(issued.token.client_id)
    assert await recorder.flush() == 0
    ticks.now += 31
    recorder.note(issued.token.client_id)
    assert await recorder.flush() == 1
    token = await store.get_token(issued.token.client_id)
    assert token is not None and token.last_used_at is not None


async def test_batch_survives_a_store_outage(redis_url: str, store: AdminStore) -> None:
    """A flush while the store does not answer keeps the batch and writes it later."""
    impatient = aioredis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=0.2)
    recorder = UsageRecorder(AdminStore(impatient), interval=60)
    issued = await seed_token(store, make_config())
    recorder.note(issued.token.client_id)
    await store.redis.execute_command("CLIENT", "PAUSE", "600", "ALL")
    during = await recorder.flush()
    await asyncio.sleep(0.7)
    after = await recorder.flush()
    token = await store.get_token(issued.token.client_id)
    await impatient.aclose()
    assert (during, after) == (0, 1)
    assert token is not None and token.last_used_at is not None


async def test_deleted_token_is_not_resurrected(store: AdminStore) -> None:
    """Touching a token deleted meanwhile writes nothing."""
    recorder = UsageRecorder(store, interval=60)
    recorder.note("A" * 22)
    await recorder.flush()
    assert await store.get_token("A" * 22) is None
