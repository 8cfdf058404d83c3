"""Revocation reaches every replica: two proxy apps on one real redis-server, real HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from admin.app import build_admin_app
from sidecar import tokenformat
from sidecar.proxy.app import build_proxy_app
from sidecar.proxy.state import STORE, VERIFIER
from sidecar.store import keys
from sidecar.store.changes import Change
from sidecar.store.management import AdminStore
from sidecar.verification.cache import CredentialCache
from sidecar.verification.invalidation import Listener
from sidecar.verification.issuing import Issued
from sidecar.verification.runtime import SHARED, Verification
from tests.kits.redis import RedisProcess, make_config, seed_role, seed_token
from tests.kits.verify import CountingHasher, hgetall_calls, revoke

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
APIS = [{"name": "orders", "prefix": "/orders", "upstream": "http://127.0.0.1:9"}]
#: Longest wait for a change to reach another replica (the target is 50 ms; 1 s at worst).
PATIENCE = 2.0


def check_headers(issued: Issued, method: str = "GET") -> dict[str, str]:
    return {
        "Authorization": f"Bearer {issued.bearer}",
        "X-Original-Method": method,
        "X-Original-URI": "/orders/1",
    }


async def replica(aiohttp_client: ClientFactory, redis_url: str) -> TestClient[Any, Any]:
    """A proxy app of its own (own cache, own listener), with a fresh lease."""
    client = await aiohttp_client(build_proxy_app(make_config(redis_url, APIS), redis_url))
    cache = client.server.app[VERIFIER].cache
    deadline = time.monotonic() + PATIENCE
    while cache.fresh_until <= time.monotonic() < deadline:  # noqa: ASYNC110 (no event to wait on)
        await asyncio.sleep(0.01)
    assert cache.fresh_until > time.monotonic(), "the replica never got its cache lease"
    return client


async def status(client: TestClient[Any, Any], issued: Issued, method: str = "GET") -> int:
    async with client.get("/_keystile/check", headers=check_headers(issued, method)) as response:
        return response.status


async def eventually(client: TestClient[Any, Any], issued: Issued, want: int, **kw: str) -> int:
    """Poll until the answer is ``want`` or PATIENCE has passed; answer the last status."""
    deadline = time.monotonic() + PATIENCE
    while (got := await status(client, issued, **kw)) != want and time.monotonic() < deadline:  # noqa: ASYNC110 (polls HTTP)
        await asyncio.sleep(0.005)
    return got


def count_argon2(client: TestClient[Any, Any]) -> CountingHasher:
    hasher = CountingHasher(make_config().hashing)
    client.server.app[VERIFIER].pool.hasher = hasher
    return hasher


async def test_revoke_on_one_replica_is_refused_by_both(
    aiohttp_client: ClientFactory, redis_url: str, store: AdminStore
) -> None:
    """Revoked through replica A's store: A refuses at once, B as soon as the event arrives."""
    issued = await seed_token(store, make_config(), access={"orders": "read"})
    a, b = await replica(aiohttp_client, redis_url), await replica(aiohttp_client, redis_url)
    counted = count_argon2(a), count_argon2(b)
    assert [await status(c, issued) for c in (a, b, a, b)] == [200, 200, 200, 200]
    assert [h.verifies for h in counted] == [1, 1]  # the second round came from the caches

    await revoke(a.server.app[STORE], issued.token.client_id)

    assert await status(a, issued) == 401
    assert await eventually(b, issued, 401) == 401


async def test_revoke_lost_with_the_subscription_is_still_refused(
    aiohttp_client: ClientFactory, redis_url: str, store: AdminStore
) -> None:
    """A revoke whose event is lost (pub/sub connection cut in the same step) is refused anyway."""
    issued = await seed_token(store, make_config(), access={"orders": "read"})
    b = await replica(aiohttp_client, redis_url)
    assert await status(b, issued) == 200

    # Written by hand, not through revoke_tokens: the kill must sit in the revoke's own
    # transaction, so no product path can lose the event in the same step.
    async def cut_then_revoke(pipe: Pipeline) -> None:
        pipe.multi()
        pipe.execute_command("CLIENT", "KILL", "TYPE", "pubsub")  # the event will find no one
        pipe.hset(keys.token(issued.token.client_id), mapping={"revoked": "1"})
        store.record(pipe, Change("test", "revoked", "token", issued.token.client_id, {}))

    await store.transaction([keys.token(issued.token.client_id)], cut_then_revoke)

    assert await eventually(b, issued, 401) == 401


async def test_role_change_reaches_cached_tokens(
    aiohttp_client: ClientFactory, redis_url: str, store: AdminStore
) -> None:
    """Raising a role's level changes what its cached tokens may do, on every replica."""
    await seed_role(store, "reader", {"orders": "read"})
    issued = await seed_token(store, make_config(), role="reader")
    b = await replica(aiohttp_client, redis_url)
    assert await status(b, issued, "POST") == 403

    await seed_role(store, "reader", {"orders": "full"})

    assert await eventually(b, issued, 200, method="POST") == 200


async def test_deactivated_user_is_refused_on_every_replica(
    aiohttp_client: ClientFactory, redis_url: str, store: AdminStore
) -> None:
    """Deactivating a user stops their cached tokens."""
    issued = await seed_token(store, make_config(), access={"orders": "read"})
    b = await replica(aiohttp_client, redis_url)
    assert await status(b, issued) == 200

    await store.patch_user("alice", {"active": False}, actor="test")

    assert await eventually(b, issued, 401) == 401


async def test_unreachable_store_ends_the_cache_lease(
    aiohttp_client: ClientFactory, private_redis: RedisProcess
) -> None:
    """With the store gone, even a cached token is refused with 503 (fail closed), not let in."""
    client = aioredis.Redis.from_url(private_redis.url, decode_responses=True)
    issued = await seed_token(AdminStore(client), make_config(), access={"orders": "read"})
    await client.aclose()
    b = await replica(aiohttp_client, private_redis.url)
    assert await status(b, issued) == 200

    private_redis.stop()

    assert await eventually(b, issued, 503) == 503


async def test_flood_of_bad_tokens_makes_no_argon2_call(
    aiohttp_client: ClientFactory, redis_url: str, store: AdminStore
) -> None:
    """Bad checksums cost neither a store read nor argon2; an unknown id costs one store read."""
    issued = await seed_token(store, make_config())
    b = await replica(aiohttp_client, redis_url)
    hasher = count_argon2(b)
    await store.redis.config_resetstat()
    broken = issued.bearer[:-1] + ("A" if issued.bearer[-1] != "A" else "B")
    unknown = tokenformat.format_token("ks", "U" * 22, issued.client_secret)

    for _ in range(30):
        headers = {"Authorization": f"Bearer {broken}", "X-Original-URI": "/orders/1"}
        async with b.get("/_keystile/check", headers=headers) as response:
            assert response.status == 401
    bad_checksum_reads = await hgetall_calls(store)
    for _ in range(30):
        headers = {"Authorization": f"Bearer {unknown}", "X-Original-URI": "/orders/1"}
        async with b.get("/_keystile/check", headers=headers) as response:
            assert response.status == 401

    assert hasher.verifies == 0
    assert bad_checksum_reads == 0
    assert await hgetall_calls(store) == 1
    async with b.get("/_keystile/metrics") as response:
        exposition = await response.text()
    assert "keystile_argon2_verifications_total 0.0" in exposition
    assert 'keystile_credential_cache_lookups_total{result="unknown"} 29.0' in exposition


def test_event_after_a_gap_drops_the_whole_cache() -> None:
    """An event whose generation skips one (events were lost) drops every entry."""
    listener, cache = _bare_listener()
    key = _cached(cache)
    listener.handle(_event("token", "X" * 22, 1))
    assert cache.get(key) == "alice"

    listener.handle(_event("token", "Y" * 22, 3))

    assert cache.get(key) is None
    assert listener.flushes["missed events"] == 1


def test_check_behind_the_counter_drops_the_whole_cache() -> None:
    """A counter ahead of the last event seen when the PING's answer arrives means a gap."""
    listener, cache = _bare_listener()
    listener.handle(_event("token", "X" * 22, 5))
    key = _cached(cache)
    # A check in flight is private state; setting it stands for a PING sent at counter 7.
    listener._check = ("keystile-check-1", 7, time.monotonic())

    listener.handle({"type": "pong", "data": "keystile-check-1"})

    assert cache.get(key) is None
    assert listener.known == 7


def _bare_listener() -> tuple[Listener, CredentialCache[str]]:
    cache: CredentialCache[str] = CredentialCache(10, 10.0)
    cache.fresh_until = float("inf")
    return Listener(aioredis.Redis(), cache, 1.0), cache


def _cached(cache: CredentialCache[str]) -> bytes:
    key = cache.key("Z" * 22, "s" * 32)
    cache.put(cache.begin_fill("Z" * 22), key, "alice", user="alice", role=None, lifetime=60.0)
    return key


def _event(kind: str, target: str, generation: int) -> dict[str, Any]:
    data = f'{{"kind": "{kind}", "id": "{target}", "generation": {generation}}}'
    return {"type": "message", "data": data}


@pytest.fixture(autouse=True)
def _quiet_listener_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("ERROR", logger="keystile.invalidation")


async def test_revoke_through_this_process_admin_api_is_refused_before_it_answers(
    aiohttp_client: ClientFactory, redis_url: str, store: AdminStore
) -> None:
    """With pub/sub silenced, the admin write alone drops the entry of its own process's proxy."""
    config = make_config(redis_url, APIS)
    shared = Verification(config, redis_url)
    proxy_app, admin_app = build_proxy_app(config, redis_url), build_admin_app(config, redis_url)
    proxy_app[SHARED] = admin_app[SHARED] = shared
    proxy, admin = await aiohttp_client(proxy_app), await aiohttp_client(admin_app)
    root = await seed_token(store, config, user="root", access={"admin": "full"})
    issued = await seed_token(store, config, access={"orders": "read"})
    # Private: only cancelling the subscriber's task silences pub/sub for good (a killed
    # connection is dialled again at once).
    assert shared._listening is not None
    shared._listening.cancel()  # no event will reach this cache...
    shared.cache.fresh_until = float("inf")  # ...and its entries stay trusted without one
    assert [await status(proxy, issued) for _ in range(2)] == [200, 200]

    path = f"/admin/v1/tokens/{issued.token.client_id}/revoke"
    async with admin.post(path, headers={"Authorization": f"Bearer {root.bearer}"}) as answer:
        assert answer.status == 200

    assert await status(proxy, issued) == 401


async def test_subscription_that_stops_answering_is_replaced() -> None:
    """A check left unanswered for longer than the lease ends the subscription (to start afresh)."""
    listener, _ = _bare_listener()
    # Private: a check sent 2 s ago and never answered, without waiting out a real lease.
    listener._check = ("keystile-check-1", 3, time.monotonic() - 2.0)

    with pytest.raises(RedisError):
        await listener._send_check(listener.redis.pubsub())

    assert listener._check is None
