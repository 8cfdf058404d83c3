"""Changing a whole store at once: the repairs of ``check --repair``, and an import.

Both are one MULTI/EXEC, WATCHing the generation counter from before the
store is read until the writes are sent: a change Keystile makes meanwhile
bumps the counter, the transaction applies nothing, and the work starts over
from a fresh read. So a repair is never computed from a stale picture, and an
import lands whole or not at all. EXEC is sent once (``base.executed``): a
connection lost under it leaves the outcome unknown, a ``StoreUnavailable``.

Both end by bumping the generation and publishing an event of kind
``store``, which every running Keystile takes as "forget everything" (its
caches and its admin index).

Neither writes audit or history entries: they change indexes, or load a
history that already says how each record came to be.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError, WatchError

from sidecar.errors import StoreUnavailable
from sidecar.store import keys
from sidecar.store.base import RECORD_SCRIPT, executed, hset_mapping
from sidecar.store.invariants import Problem, Snapshot, find_problems
from sidecar.store.snapshot import ATTEMPTS, StoreBusy, read_snapshot

#: Keys whose change means the store is no longer empty (with the generation).
INDEXES = (keys.GENERATION, keys.TOKENS, keys.USERS, keys.ROLES, keys.ISSUED_IDS, keys.AUDIT)


BUSY = "the store changed while the file was loaded; nothing was written"


class NotEmpty(Exception):
    """An import was aimed at a store that holds records already."""


async def repair(redis: aioredis.Redis) -> tuple[list[Problem], list[Problem]]:
    """Apply every safe repair at once: ``(repaired, left as they are)``."""
    for _ in range(ATTEMPTS):
        try:
            async with redis.pipeline(transaction=True) as pipe:
                await pipe.watch(keys.GENERATION)
                problems = find_problems(await read_snapshot(redis))
                fixable = [problem for problem in problems if problem.repair]
                if fixable:
                    pipe.multi()
                    for problem in fixable:
                        for command in problem.repair:
                            pipe.execute_command(*command)
                    _announce(pipe)
                    if not await executed(pipe):
                        continue
                return fixable, [problem for problem in problems if not problem.repair]
        except WatchError:
            continue
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {type(exc).__name__}") from exc
    raise StoreBusy(f"the store changed during each of {ATTEMPTS} repairs; try again")


async def load(redis: aioredis.Redis, snapshot: Snapshot) -> None:
    """Write ``snapshot`` into an empty store, whole or not at all (``NotEmpty``, ``StoreBusy``)."""
    try:
        async with redis.pipeline(transaction=True) as pipe:
            await pipe.watch(*INDEXES)
            present = await read_snapshot(redis)
            if not present.is_empty():
                raise NotEmpty(_holding(present))
            pipe.multi()
            _queue_snapshot(pipe, snapshot)
            pipe.set(keys.GENERATION, snapshot.generation or "0")
            _announce(pipe)
            if not await executed(pipe):
                raise StoreBusy(BUSY)
    except WatchError:  # the connection failed while the store was read: nothing written
        raise StoreBusy(BUSY) from None
    except (RedisError, OSError) as exc:
        raise StoreUnavailable(f"redis: {type(exc).__name__}") from exc


def _holding(snapshot: Snapshot) -> str:
    # Tokens first: what an operator restoring over a store most needs to see.
    counts = {"tokens": len(snapshot.tokens), **snapshot.counts()}
    held = ", ".join(f"{what} {count}" for what, count in counts.items() if count)
    return f"it holds {held or 'index keys'}"


def _queue_snapshot(pipe: Pipeline, snapshot: Snapshot) -> None:
    for family, records in (
        (keys.user, snapshot.users),
        (keys.role, snapshot.roles),
        (keys.token, snapshot.tokens),
    ):
        for name, fields in records.items():
            pipe.hset(family(name), mapping=hset_mapping(fields))
    _queue_sets(pipe, keys.user_tokens, snapshot.user_tokens)
    _queue_sets(pipe, keys.role_tokens, snapshot.role_tokens)
    for cid, entries in snapshot.histories.items():
        pipe.rpush(keys.token_history(cid), *entries)
    for key, scores in ((keys.TOKENS, snapshot.token_index), (keys.USERS, snapshot.user_index)):
        if scores:
            pipe.zadd(key, _loose(scores))
    for key, members in ((keys.ISSUED_IDS, snapshot.issued), (keys.ROLES, snapshot.role_index)):
        if members:
            pipe.sadd(key, *sorted(members))
    for entry_id, fields in snapshot.audit:
        pipe.xadd(keys.AUDIT, _loose(fields), id=entry_id)


def _queue_sets(pipe: Pipeline, family: Callable[[str], str], sets: dict[str, set[str]]) -> None:
    for name, members in sets.items():
        if members:
            pipe.sadd(family(name), *sorted(members))


def _announce(pipe: Pipeline) -> None:
    # Kind "store" is one no cache knows: each listener drops everything it holds.
    pipe.eval(RECORD_SCRIPT, 1, keys.GENERATION, keys.EVENTS, "store", "")


def _loose(mapping: Mapping[str, Any]) -> Any:
    # redis-py types its mapping parameters as invariant dicts of its own unions.
    return mapping
