"""The invariants of the data model (store.invariants), read and repaired in a real Redis."""

from __future__ import annotations

from sidecar.store import keys
from sidecar.store.invariants import find_problems
from sidecar.store.management import AdminStore
from sidecar.store.snapshot import read_snapshot
from sidecar.store.wholestore import repair
from tests.kits.store import admin_store, lived_in

__all__ = ["admin_store"]  # a fixture, used by name


async def problems(store: AdminStore) -> list[str]:
    return [problem.message for problem in find_problems(await read_snapshot(store.redis))]


async def test_a_store_written_by_keystile_keeps_every_invariant(admin_store: AdminStore) -> None:
    """Create, patch, regenerate, revoke and delete of tokens, users and roles leave no problem."""
    await lived_in(admin_store)

    assert await problems(admin_store) == []


async def test_each_broken_invariant_is_named_on_its_own_line(admin_store: AdminStore) -> None:
    """Missing and stray index entries, orphans and half records are each named once."""
    kept, revoked = await lived_in(admin_store)
    redis = admin_store.redis
    await redis.zrem(keys.TOKENS, kept)
    await redis.srem(keys.user_tokens("alice"), revoked)
    await redis.srem(keys.role_tokens("ops"), kept)
    await redis.sadd(keys.role_tokens("ops"), revoked)
    await redis.rpush(keys.token_history("never-issued"), '{"action": "created"}')
    await redis.zadd(keys.USERS, {"ghost": 1})
    await redis.hset(keys.token("half"), mapping={"client_id": "half", "user": "alice"})
    await redis.delete(keys.role("ops"))
    await redis.set(keys.user_tokens("dave"), "x")

    assert sorted(await problems(admin_store)) == sorted([
        f"token {kept} is missing from {{ks}}:tokens",
        f"token {kept} is missing from {{ks}}:role-tokens:ops",
        f"token {kept}: its role 'ops' does not exist",
        "token half: the record lacks the field 'secret_hash'",
        f"token {revoked} is missing from {{ks}}:user-tokens:alice",
        f"{{ks}}:role-tokens:ops lists {revoked}, which is not a token of it",
        "the history of never-issued has no issued client_id",
        "{ks}:users lists ghost, which has no user record",
        "{ks}:roles lists ops, which has no role record",
        "{ks}:user-tokens:dave is a string, not the type its name promises",
    ])  # fmt: skip


async def test_repair_fixes_index_entries_and_never_touches_a_record(
    admin_store: AdminStore,
) -> None:
    """--repair restores the indexes; the token records and histories stay byte for byte."""
    kept, revoked = await lived_in(admin_store)
    redis = admin_store.redis
    records = {cid: await redis.hgetall(keys.token(cid)) for cid in (kept, revoked)}
    await redis.zrem(keys.TOKENS, kept)
    await redis.srem(keys.ISSUED_IDS, kept)
    await redis.srem(keys.user_tokens("alice"), kept)
    await redis.sadd(keys.role_tokens("ops"), "gone")
    await redis.srem(keys.ROLES, "ops")
    await redis.hdel(keys.token(revoked), "expires_at")  # not repairable: stays named
    generation = await admin_store.generation()

    repaired, left = await repair(redis)

    assert len(repaired) == 5
    assert [problem.message for problem in left] == [
        f"token {revoked}: the record lacks the field 'expires_at'"
    ]
    assert await problems(admin_store) == [left[0].message]
    assert await redis.hgetall(keys.token(kept)) == records[kept]
    assert await redis.sismember(keys.ISSUED_IDS, kept)
    assert await admin_store.generation() == generation + 1  # every cache hears of it


async def test_repair_of_a_clean_store_writes_nothing(admin_store: AdminStore) -> None:
    """On a clean store a repair changes nothing, not even the generation."""
    await lived_in(admin_store)
    generation = await admin_store.generation()

    assert await repair(admin_store.redis) == ([], [])
    assert await admin_store.generation() == generation
