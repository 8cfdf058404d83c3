"""What every part of the store shares: the connection, the transaction, the encoding.

``StoreBase`` holds the Redis client, the durability wait and the
``after_commit`` hooks; the proxy's reads (``redis_store.RedisStore``) and the
admin parts (``tokens``, ``people``, ``listing``) build on it, and
``wholestore`` uses its ``executed`` and ``RECORD_SCRIPT``.

Every write that touches several keys is one MULTI/EXEC transaction, guarded by
WATCH on the keys its checks read, so a change, its history entry, its audit
entry and its invalidation event land together or not at all. Every change
bumps ``keys.GENERATION`` and publishes on ``keys.EVENTS`` in that same
transaction (one Lua call, so the event carries the generation it made), which
is what lets every replica drop a stale cache entry and notice a missed event.
Hooks in ``after_commit`` hear of each committed change in this process before
the write returns, so this process's own cache never lags its own writes.

Redis failures surface as ``StoreUnavailable`` (fail closed, 503), never as a
redis-py exception.

The client retries a command once when its connection fails
(``verification.redis_client``); every command sent here is safe to send
twice: reads; ``WATCH`` and the reads after it (redis-py turns a failure
there into a ``WatchError``, and the transaction starts over before anything
was written); the hash upgrade (compare-and-set) and ``last_used_at``
(only ever moves forward). ``EXEC`` is never sent twice (``executed``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, TypeVar, cast

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError, WatchError

from sidecar import clock
from sidecar.errors import StoreUnavailable
from sidecar.store import keys
from sidecar.store.changes import Change
from sidecar.store.durability import Durability, NotDurable

T = TypeVar("T")

#: The changes ``record`` queued in the transaction running in this task.
_RECORDING: ContextVar[list[Change] | None] = ContextVar("keystile_recording", default=None)


class StoreBase:
    """One Redis connection pool, its durability wait and its commit hooks, shared by every part."""

    def __init__(self, redis: aioredis.Redis, durability: Durability | None = None) -> None:
        self.redis = redis
        #: The wait after each committed change (``redis.durability``).
        self.durability = durability or Durability()
        #: Called with the changes of each committed transaction, in this process.
        self.after_commit: list[Callable[[Sequence[Change]], None]] = []

    @asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        """Turn a Redis or socket failure inside the block into ``StoreUnavailable``.

        A ``WatchError`` passes through: ``transaction`` answers it by starting over.
        """
        try:
            yield
        except RedisError as exc:
            if isinstance(exc, WatchError):
                raise
            raise StoreUnavailable(f"redis: {type(exc).__name__}") from exc
        except OSError as exc:
            raise StoreUnavailable(f"redis: {type(exc).__name__}") from exc

    async def transaction(self, watch: list[str], body: Callable[[Pipeline], Awaitable[T]]) -> T:
        """Run ``body`` (reads, then ``pipe.multi()``, then writes) until no watched key moved.

        A change is answered only once durable as configured; one applied but not
        confirmed raises ``NotDurable`` (after the hooks: it is applied).
        """
        async with self.guard():
            while True:
                changes: list[Change] = []
                recording = _RECORDING.set(changes)
                try:
                    async with self.durability.commit(self.redis) as commit:
                        pipe = commit.pipe
                        try:
                            await pipe.watch(*watch)
                            result = await body(pipe)
                        except WatchError:
                            continue  # the connection failed while reading: nothing was written
                        if not await executed(pipe):
                            continue
                        shortfall = await commit.confirm() if changes else None
                finally:
                    _RECORDING.reset(recording)
                for hook in self.after_commit if changes else ():
                    hook(changes)
                if shortfall is not None:
                    raise NotDurable(shortfall)
                return result

    @staticmethod
    def record(pipe: Pipeline, change: Change) -> None:
        """Queue the history, audit and invalidation writes of ``change`` on ``pipe``."""
        entry = json.dumps(change.entry(clock.to_rfc3339(clock.now())))
        if change.kind == "token":
            pipe.rpush(keys.token_history(change.target), entry)
        pipe.xadd(keys.AUDIT, {"entry": entry})
        pipe.eval(RECORD_SCRIPT, 1, keys.GENERATION, keys.EVENTS, change.kind, change.target)
        if (recording := _RECORDING.get()) is not None:
            recording.append(change)

    async def ping(self) -> None:
        async with self.guard():
            await self.redis.ping()

    async def generation(self) -> int:
        async with self.guard():
            return int(await self.redis.get(keys.GENERATION) or 0)


async def executed(pipe: Pipeline) -> bool:
    """Send MULTI ... EXEC: True if it applied, False if a watched key moved (run again).

    redis-py reports a connection lost during EXEC as a ``WatchError`` too
    (raised while handling the ``ConnectionError``). Then the transaction may
    have applied with only its answer lost, and running it again could apply
    it twice (a second token, a second audit entry): the outcome is unknown,
    so it is a 503, never a second attempt.
    """
    try:
        await pipe.execute()
    except WatchError as exc:
        if isinstance(exc.__context__, RedisError | OSError):
            raise StoreUnavailable("redis: transaction outcome unknown") from exc
        return False
    return True


#: Bumps the generation and publishes the event that carries it, as one step
#: (KEYS: the generation; ARGV: the channel, the kind, the target).
RECORD_SCRIPT = """
local generation = redis.call('INCR', KEYS[1])
local event = cjson.encode({kind = ARGV[2], id = ARGV[3], generation = generation})
redis.call('PUBLISH', ARGV[1], event)
return generation
"""


# -- encoding: redis-py's loose types, made exact --------------------------------


def hash_fields(raw: Any) -> dict[str, str]:
    """A hash as read with ``decode_responses=True`` (redis-py types it loosely)."""
    return cast(dict[str, str], raw)


def texts(raw: Any) -> list[str]:
    """Members as read with ``decode_responses=True`` (redis-py types them loosely)."""
    return [str(item) for item in raw]


def hset_mapping(fields: Mapping[str, str]) -> Mapping[Any, Any]:
    """``fields`` as ``HSET``'s mapping (redis-py's parameter is invariant in its key type)."""
    return fields


def index_score(rfc3339: str) -> int:
    """The score a sorted-set index keeps for a record made at ``rfc3339`` (ms)."""
    return int(clock.from_rfc3339(rfc3339).timestamp() * 1000)
