"""The verifier on a real redis-server with real argon2id: cache, single flight, cold path."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import redis.asyncio as aioredis

from sidecar import clock
from sidecar.config import HashingConfig
from sidecar.errors import InvalidToken, Overloaded, StoreUnavailable
from sidecar.store.management import AdminStore
from sidecar.verification import invalidation
from sidecar.verification.hashing import Argon2Hasher
from sidecar.verification.verifier import Verifier
from tests.kits.redis import RedisProcess, make_config, seed_role, seed_token
from tests.kits.verify import (
    CHEAP,
    CountingHasher,
    hgetall_calls,
    make_verifier,
    presented,
    revoke,
)


@pytest.fixture
async def hasher() -> CountingHasher:
    return CountingHasher(CHEAP)


@pytest.fixture
async def verifier(store: AdminStore, hasher: CountingHasher) -> AsyncIterator[Verifier]:
    verifier = make_verifier(store, hasher)
    yield verifier
    await verifier.close()
    verifier.pool.close()


async def test_valid_credential_is_verified_once_then_cached(
    store: AdminStore, verifier: Verifier, hasher: CountingHasher
) -> None:
    """The first use runs argon2; later uses of the same credential are answered from the cache."""
    issued = await seed_token(store, make_config(), access={"orders": "read"})
    credential = presented(issued.token.client_id, issued.client_secret)

    first = await verifier.verify(credential)
    second = await verifier.verify(credential)

    assert first.username == "alice"
    assert first.access == {"orders": "read"}
    assert second == first
    assert hasher.verifies == 1


async def test_cache_hit_answers_the_whole_identity(
    store: AdminStore, verifier: Verifier, hasher: CountingHasher
) -> None:
    """A hit gives the user, role, both access maps and expiry the store gave the first time."""
    await seed_role(store, "reader", {"billing": "read"})
    issued = await seed_token(store, make_config(), access={"orders": "read"}, role="reader")
    credential = presented(issued.token.client_id, issued.client_secret)
    await verifier.verify(credential)

    hit = await verifier.verify(credential)

    assert (hit.client_id, hit.username, hit.role, hit.expires_at) == (
        issued.token.client_id,
        "alice",
        "reader",
        issued.token.expires_at,
    )
    assert (hit.access, hit.role_access) == ({"orders": "read"}, {"billing": "read"})
    assert (verifier.hits, hasher.verifies) == (1, 1)


async def test_entries_of_one_user_share_its_name_role_and_access_maps(
    store: AdminStore, verifier: Verifier
) -> None:
    """Tokens with the same user, role and access hold one copy of each between their entries."""
    await seed_role(store, "reader", {"billing": "read"})
    config = make_config()
    first, second = [
        await seed_token(store, config, access={"orders": "read"}, role="reader") for _ in "ab"
    ]

    one = await verifier.verify(presented(first.token.client_id, first.client_secret))
    other = await verifier.verify(presented(second.token.client_id, second.client_secret))

    assert one.client_id != other.client_id
    assert one.username is other.username
    assert one.role is other.role
    assert one.access is other.access
    assert one.role_access is other.role_access


async def test_cache_hit_needs_no_store(private_redis: RedisProcess) -> None:
    """A cached credential is accepted with the store down; any other one fails closed (503)."""
    client = aioredis.Redis.from_url(private_redis.url, decode_responses=True)
    store = AdminStore(client)
    issued = await seed_token(store, make_config())
    verifier = make_verifier(store, CountingHasher(CHEAP))
    await verifier.verify(presented(issued.token.client_id, issued.client_secret))

    private_redis.stop()

    again = await verifier.verify(presented(issued.token.client_id, issued.client_secret))
    assert again.client_id == issued.token.client_id
    with pytest.raises(StoreUnavailable):
        await verifier.verify(presented(issued.token.client_id, "x" * 32))
    verifier.pool.close()
    await client.aclose()


async def test_concurrent_requests_with_one_credential_share_one_verification(
    store: AdminStore, verifier: Verifier, hasher: CountingHasher
) -> None:
    """Twenty simultaneous requests with one uncached credential cost one argon2 run."""
    issued = await seed_token(store, make_config())
    credential = presented(issued.token.client_id, issued.client_secret)

    results = await asyncio.gather(*(verifier.verify(credential) for _ in range(20)))

    assert {r.client_id for r in results} == {issued.token.client_id}
    assert hasher.verifies == 1


async def test_concurrent_wrong_secrets_share_one_refusal(
    store: AdminStore, verifier: Verifier, hasher: CountingHasher
) -> None:
    """Simultaneous requests with the same wrong secret all get 401 from one argon2 run."""
    issued = await seed_token(store, make_config())
    credential = presented(issued.token.client_id, "w" * 32)

    results = await asyncio.gather(
        *(verifier.verify(credential) for _ in range(5)), return_exceptions=True
    )

    assert all(isinstance(r, InvalidToken) and r.reason == "wrong secret" for r in results)
    assert hasher.verifies == 1


async def test_unknown_client_id_flood_costs_one_store_read_and_no_argon2(
    store: AdminStore, verifier: Verifier, hasher: CountingHasher
) -> None:
    """Repeating an unknown client_id is refused from memory: one store read, no argon2."""
    await store.redis.config_resetstat()
    credential = presented("U" * 22, "s" * 32)

    for _ in range(50):
        with pytest.raises(InvalidToken):
            await verifier.verify(credential)

    assert hasher.verifies == 0
    assert await hgetall_calls(store) == 1


async def test_unknown_id_is_accepted_once_created(
    store: AdminStore, verifier: Verifier, hasher: CountingHasher
) -> None:
    """An id remembered as unknown works as soon as a token with that id is created."""
    store.after_commit.append(invalidation.local_hook(verifier.cache))
    seeded = await seed_token(store, make_config(), user="bob")  # creates the user
    client_id, secret = "N" * 22, "n" * 32
    with pytest.raises(InvalidToken):
        await verifier.verify(presented(client_id, secret))
    token = seeded.token.with_changes(
        client_id=client_id, secret_hash=Argon2Hasher(CHEAP).hash(secret)
    )

    await store.create_token(token, actor="test")

    assert (await verifier.verify(presented(client_id, secret))).username == "bob"


async def test_revoked_token_is_refused_without_argon2(
    store: AdminStore, verifier: Verifier, hasher: CountingHasher
) -> None:
    """A revoked token with its right secret is refused, and the refusal costs no argon2."""
    issued = await seed_token(store, make_config())
    await revoke(store, issued.token.client_id)

    with pytest.raises(InvalidToken) as refused:
        await verifier.verify(presented(issued.token.client_id, issued.client_secret))

    assert refused.value.reason == "revoked"
    assert hasher.verifies == 0


async def test_fill_racing_a_revoke_does_not_cache_the_token(store: AdminStore) -> None:
    """A verification that read the token just before a revoke answers, but caches nothing."""
    issued = await seed_token(store, make_config())
    gate = threading.Event()
    hasher = CountingHasher(CHEAP, gate)
    verifier = make_verifier(store, hasher)
    store.after_commit.append(invalidation.local_hook(verifier.cache))
    credential = presented(issued.token.client_id, issued.client_secret)
    racing = asyncio.ensure_future(verifier.verify(credential))
    await asyncio.to_thread(hasher.entered.wait, 10)  # the store was read; argon2 is running

    await revoke(store, issued.token.client_id)
    gate.set()
    await racing

    with pytest.raises(InvalidToken):
        await verifier.verify(credential)
    verifier.pool.close()


async def test_full_hashing_queue_answers_503_at_once(store: AdminStore) -> None:
    """When every argon2 thread and queue slot is taken, a new verification is a fast 503."""
    first = await seed_token(store, make_config())
    second = await seed_token(store, make_config(), user="bob")
    gate = threading.Event()
    hasher = CountingHasher(CHEAP, gate)
    verifier = make_verifier(store, hasher, threads=1, queue_size=0)
    busy = asyncio.ensure_future(
        verifier.verify(presented(first.token.client_id, first.client_secret))
    )
    await asyncio.to_thread(hasher.entered.wait, 10)

    with pytest.raises(Overloaded) as refused:
        await verifier.verify(presented(second.token.client_id, second.client_secret))

    assert refused.value.status == 503
    gate.set()
    assert (await busy).username == "alice"
    verifier.pool.close()


async def test_hash_made_with_old_parameters_is_upgraded(store: AdminStore) -> None:
    """After a successful verify, a hash with other argon2 parameters is replaced by a new one."""
    issued = await seed_token(store, make_config())  # m=8 KiB, t=1
    stronger = HashingConfig(memory_kib=16, time_cost=2, parallelism=1)
    verifier = make_verifier(store, CountingHasher(stronger))

    await verifier.verify(presented(issued.token.client_id, issued.client_secret))
    stored = await store.get_token(issued.token.client_id)
    for _ in range(100):  # the upgrade runs after the answer: wait for the store to show it
        if stored is not None and "m=16,t=2" in stored.secret_hash:
            break
        await asyncio.sleep(0.05)
        stored = await store.get_token(issued.token.client_id)
    assert stored is not None
    assert "m=16,t=2" in stored.secret_hash
    assert Argon2Hasher(stronger).verify(stored.secret_hash, issued.client_secret)
    verifier.pool.close()


async def test_cached_token_is_refused_once_it_expires(
    store: AdminStore, verifier: Verifier
) -> None:
    """A cached verification never outlives the token's expiry."""
    issued = await seed_token(store, make_config())
    expires = clock.to_rfc3339(clock.now() + timedelta(seconds=2))
    await store.patch_token(issued.token.client_id, {"expires_at": expires}, actor="test")
    credential = presented(issued.token.client_id, issued.client_secret)
    await verifier.verify(credential)

    await asyncio.sleep(2.1)

    with pytest.raises(InvalidToken) as refused:
        await verifier.verify(credential)
    assert refused.value.reason == "expired"


async def test_request_that_leaves_does_not_cancel_the_shared_verification(
    store: AdminStore,
) -> None:
    """A client that goes away mid-verification leaves the others' shared answer intact."""
    issued = await seed_token(store, make_config())
    gate = threading.Event()
    hasher = CountingHasher(CHEAP, gate)
    verifier = make_verifier(store, hasher)
    credential = presented(issued.token.client_id, issued.client_secret)
    leaving = asyncio.ensure_future(verifier.verify(credential))
    staying = asyncio.ensure_future(verifier.verify(credential))
    await asyncio.to_thread(hasher.entered.wait, 10)

    leaving.cancel()
    gate.set()

    assert (await staying).client_id == issued.token.client_id
    assert leaving.cancelled()
    assert hasher.verifies == 1
    verifier.pool.close()


async def test_concurrent_guesses_for_one_unknown_id_cost_one_store_read(
    store: AdminStore, verifier: Verifier, hasher: CountingHasher
) -> None:
    """Twenty simultaneous secrets for one unknown client_id: one store read, all refused."""
    await store.redis.config_resetstat()
    guesses = [presented("U" * 22, f"{n:032d}") for n in range(20)]

    results = await asyncio.gather(*map(verifier.verify, guesses), return_exceptions=True)

    assert all(isinstance(r, InvalidToken) and r.reason == "unknown client_id" for r in results)
    assert await hgetall_calls(store) == 1
    assert hasher.verifies == 0
