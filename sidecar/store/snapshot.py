"""Reading a whole store into a ``Snapshot``, consistently, while Keystile may write to it.

Every change bumps ``keys.GENERATION`` in the transaction that makes it, so a
read that finds the same generation before and after saw no change half
done: the snapshot is what the store held at one moment. (Writes that are not
changes, ``last_used_at`` and a rehash, touch one field of one record and bump
nothing; no invariant depends on them.) A store that keeps changing is read
again, a few times, then given up on with ``StoreBusy``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from sidecar.errors import StoreUnavailable
from sidecar.store import keys
from sidecar.store.invariants import Snapshot

#: Keys read per round trip.
BATCH = 1000
ATTEMPTS = 5

#: Key families, ``{ks}:<family>:<name>``: their Redis type, and the Snapshot field.
FAMILIES = {
    "token": ("hash", "tokens"),
    "history": ("list", "histories"),
    "user": ("hash", "users"),
    "user-tokens": ("set", "user_tokens"),
    "role": ("hash", "roles"),
    "role-tokens": ("set", "role_tokens"),
}
#: Keys of their own: their Redis type, and the Snapshot field.
SINGLES = {
    keys.GENERATION: ("string", "generation"),
    keys.ISSUED_IDS: ("set", "issued"),
    keys.TOKENS: ("zset", "token_index"),
    keys.USERS: ("zset", "user_index"),
    keys.ROLES: ("set", "role_index"),
    keys.AUDIT: ("stream", "audit"),
}


class StoreBusy(Exception):
    """The store changed during every attempt to read it whole."""


async def read_snapshot(redis: aioredis.Redis) -> Snapshot:
    """The whole store at one moment (see the module docstring); StoreUnavailable on errors."""
    try:
        for _ in range(ATTEMPTS):
            before = await redis.get(keys.GENERATION)
            snapshot = await _read_once(redis)
            if snapshot.generation == (None if before is None else str(before)):
                return snapshot
    except (RedisError, OSError) as exc:
        raise StoreUnavailable(f"redis: {type(exc).__name__}") from exc
    raise StoreBusy(f"the store changed during each of {ATTEMPTS} reads; try again")


def placement(key: str) -> tuple[str, str, str | None] | None:
    """``(redis type, Snapshot field, name)`` of a Keystile key; None for one not checked."""
    if key in SINGLES:
        kind, attribute = SINGLES[key]
        return kind, attribute, None
    family, _, name = key.removeprefix(f"{keys.TAG}:").partition(":")
    if family in FAMILIES and name:
        kind, attribute = FAMILIES[family]
        return kind, attribute, name
    return None  # wrong-secret counters, and keys of later versions


async def _read_once(redis: aioredis.Redis) -> Snapshot:
    snapshot = Snapshot()
    found = [str(key) async for key in redis.scan_iter(match=f"{keys.TAG}:*", count=BATCH)]
    placed = {key: where for key in found if (where := placement(key)) is not None}
    names = sorted(placed)
    for start in range(0, len(names), BATCH):
        await _read_batch(redis, snapshot, names[start : start + BATCH], placed)
    generation = await redis.get(keys.GENERATION)
    snapshot.generation = None if generation is None else str(generation)
    return snapshot


async def _read_batch(
    redis: aioredis.Redis,
    snapshot: Snapshot,
    batch: Sequence[str],
    placed: dict[str, tuple[str, str, str | None]],
) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for key in batch:
            pipe.type(key)
        types = await pipe.execute()
    wanted = []
    for key, found in zip(batch, types, strict=True):
        if found == "none":
            continue  # deleted since the scan; the generation check notices the change
        if found != placed[key][0]:
            snapshot.mistyped[key] = str(found)
        else:
            wanted.append(key)
    async with redis.pipeline(transaction=False) as pipe:
        for key in wanted:
            _queue_read(pipe, placed[key][0], key)
        values = await pipe.execute()
    for key, value in zip(wanted, values, strict=True):
        _place(snapshot, placed[key], value)


def _queue_read(pipe: Any, kind: str, key: str) -> None:
    if kind == "hash":
        pipe.hgetall(key)
    elif kind == "set":
        pipe.smembers(key)
    elif kind == "zset":
        pipe.zrange(key, 0, -1, withscores=True)
    elif kind == "list":
        pipe.lrange(key, 0, -1)
    elif kind == "stream":
        pipe.xrange(key, "-", "+")
    else:
        pipe.get(key)


def _place(snapshot: Snapshot, where: tuple[str, str, str | None], value: Any) -> None:
    kind, attribute, name = where
    if kind == "zset":
        value = {str(member): float(score) for member, score in value}
    elif kind == "set":
        value = {str(member) for member in value}
    elif kind == "stream":
        value = [(str(entry_id), dict(fields)) for entry_id, fields in value]
    elif kind == "list":
        value = [str(item) for item in value]
    if name is None:
        setattr(snapshot, attribute, value)
    else:
        getattr(snapshot, attribute)[name] = value
