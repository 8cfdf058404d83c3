"""The credential store: users, roles and tokens in Redis.

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
(only ever moves forward). ``EXEC`` is never sent twice (``_executed``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError, WatchError

from sidecar import clock
from sidecar.errors import StoreUnavailable
from sidecar.records import Role, Token, User
from sidecar.store import keys
from sidecar.store.durability import Durability, NotDurable

T = TypeVar("T")


#: Fields that never appear in history or audit entries.
SECRET_FIELDS = frozenset({"secret_hash", "previous_hash"})


class Conflict(Exception):
    """A write's precondition failed (exists already, missing, in use)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Credential:
    """What the verifier needs about one client_id, read in one round trip."""

    token: Token
    user: User | None
    role: Role | None


@dataclass(frozen=True)
class Change:
    """One recorded change: goes to the token's history and the global audit."""

    actor: str
    action: str
    kind: str  # "token", "user" or "role"
    target: str
    changes: Mapping[str, tuple[Any, Any]]

    def entry(self, at: str) -> dict[str, Any]:
        return {
            "at": at,
            "actor": self.actor,
            "action": self.action,
            "kind": self.kind,
            "target": self.target,
            "changes": {k: list(v) for k, v in self.changes.items() if k not in SECRET_FIELDS},
        }


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{field: (old, new)}`` for every field whose value differs."""
    return {k: (old.get(k), v) for k, v in new.items() if old.get(k) != v}


#: The changes ``record`` queued in the transaction running in this task.
_RECORDING: ContextVar[list[Change] | None] = ContextVar("keystile_recording", default=None)


class RedisStore:
    def __init__(self, redis: aioredis.Redis, durability: Durability | None = None) -> None:
        self.redis = redis
        #: The wait after each committed change (``redis.durability``).
        self.durability = durability or Durability()
        #: Called with the changes of each committed transaction, in this process.
        self.after_commit: list[Callable[[Sequence[Change]], None]] = []

    # -- plumbing -----------------------------------------------------------

    @asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
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
        async with self._guard():
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
                        if not await _executed(pipe):
                            continue
                        shortfall = await commit.confirm() if changes else None
                finally:
                    _RECORDING.reset(recording)
                for hook in self.after_commit if changes else ():
                    hook(changes)
                if shortfall is not None:
                    raise NotDurable(shortfall)
                return result

    def record(self, pipe: Pipeline, change: Change) -> None:
        """Queue the history, audit and invalidation writes of ``change`` on ``pipe``."""
        entry = json.dumps(change.entry(clock.to_rfc3339(clock.now())))
        if change.kind == "token":
            pipe.rpush(keys.token_history(change.target), entry)
        pipe.xadd(keys.AUDIT, {"entry": entry})
        pipe.eval(_RECORD_SCRIPT, 1, keys.GENERATION, keys.EVENTS, change.kind, change.target)
        if (recording := _RECORDING.get()) is not None:
            recording.append(change)

    async def ping(self) -> None:
        async with self._guard():
            await self.redis.ping()

    # -- reads ----------------------------------------------------------------

    async def get_user(self, username: str) -> User | None:
        async with self._guard():
            raw = await self.redis.hgetall(keys.user(username))
        return User.from_fields(_strs(raw)) if raw else None

    async def get_role(self, name: str) -> Role | None:
        async with self._guard():
            raw = await self.redis.hgetall(keys.role(name))
        return Role.from_fields(_strs(raw)) if raw else None

    async def get_token(self, client_id: str) -> Token | None:
        async with self._guard():
            raw = await self.redis.hgetall(keys.token(client_id))
        return Token.from_fields(_strs(raw)) if raw else None

    async def load_credential(self, client_id: str) -> Credential | None:
        """The token with its user and role, for verification."""
        token = await self.get_token(client_id)
        if token is None:
            return None
        async with self._guard(), self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.user(token.user))
            pipe.hgetall(keys.role(token.role or ""))
            raw_user, raw_role = await pipe.execute()
        return Credential(
            token=token,
            user=User.from_fields(_strs(raw_user)) if raw_user else None,
            role=Role.from_fields(_strs(raw_role)) if raw_role and token.role else None,
        )

    async def generation(self) -> int:
        async with self._guard():
            return int(await self.redis.get(keys.GENERATION) or 0)

    # -- writes ---------------------------------------------------------------

    async def ensure_user(self, user: User, actor: str) -> User:
        """Create ``user`` unless a user of that name (any case) exists; return the stored one."""

        async def body(pipe: Pipeline) -> User:
            raw = await pipe.hgetall(keys.user(user.username))
            if raw:
                return User.from_fields(_strs(raw))
            pipe.multi()
            self._write_new_user(pipe, user, actor)
            return user

        return await self.transaction([keys.user(user.username)], body)

    def _write_new_user(self, pipe: Pipeline, user: User, actor: str) -> None:
        pipe.hset(keys.user(user.username), mapping=_encodable(user.to_fields()))
        pipe.zadd(keys.USERS, {user.username.lower(): _ms(user.created_at)})
        self.record(pipe, Change(actor, "created", "user", user.username, diff({}, user.public())))

    async def put_role(self, role: Role, actor: str) -> bool:
        """Create or replace a role (True when created); every token that has it changes at once."""

        async def body(pipe: Pipeline) -> bool:
            raw = await pipe.hgetall(keys.role(role.name))
            old = Role.from_fields(_strs(raw)).public() if raw else {}
            pipe.multi()
            pipe.hset(keys.role(role.name), mapping=_encodable(role.to_fields()))
            pipe.sadd(keys.ROLES, role.name)
            action = "updated" if raw else "created"
            self.record(pipe, Change(actor, action, "role", role.name, diff(old, role.public())))
            return not raw

        return await self.transaction([keys.role(role.name)], body)

    async def create_token(self, token: Token, actor: str) -> Token:
        """Store a new token; its user and role must exist, its client_id must be new."""
        watched = [keys.user(token.user), keys.token(token.client_id)]
        if token.role:
            watched.append(keys.role(token.role))

        async def body(pipe: Pipeline) -> Token:
            raw_user = await pipe.hgetall(keys.user(token.user))
            if not raw_user:
                raise Conflict(f"user {token.user!r} does not exist", field="user")
            if token.role and not await pipe.exists(keys.role(token.role)):
                raise Conflict(f"role {token.role!r} does not exist", field="role")
            if await pipe.sismember(keys.ISSUED_IDS, token.client_id):
                raise Conflict("client_id was issued before", field="client_id")
            stored = token.with_changes(user=User.from_fields(_strs(raw_user)).username)
            pipe.multi()
            self._write_new_token(pipe, stored)
            public = stored.public(clock.now())
            self.record(pipe, Change(actor, "created", "token", stored.client_id, diff({}, public)))
            return stored

        return await self.transaction(watched, body)

    def _write_new_token(self, pipe: Pipeline, token: Token) -> None:
        pipe.sadd(keys.ISSUED_IDS, token.client_id)
        pipe.hset(keys.token(token.client_id), mapping=_encodable(token.to_fields()))
        pipe.zadd(keys.TOKENS, {token.client_id: _ms(token.created_at)})
        pipe.sadd(keys.user_tokens(token.user), token.client_id)
        if token.role:
            pipe.sadd(keys.role_tokens(token.role), token.client_id)

    async def upgrade_secret_hash(self, client_id: str, old_hash: str, new_hash: str) -> bool:
        """Replace a hash made with older argon2 parameters, unless the secret changed since.

        Not a change (same secret, no event, no history): cached verifications stay valid.
        """
        async with self._guard():
            key = keys.token(client_id)
            done = await self.redis.eval(_UPGRADE_SCRIPT, 1, key, old_hash, new_hash)
        return bool(done)

    async def touch_last_used(self, used: Mapping[str, str]) -> None:
        """Write ``last_used_at`` for many tokens in one round trip (no event: not a change).

        ``HSET ... XX``-like behaviour via a Lua-free check: only tokens that still
        exist are touched, so a deleted token is not resurrected as a stub hash.
        """
        if not used:
            return
        async with self._guard(), self.redis.pipeline(transaction=False) as pipe:
            for client_id, at in used.items():
                pipe.eval(_TOUCH_SCRIPT, 1, keys.token(client_id), at)
            await pipe.execute()


async def _executed(pipe: Pipeline) -> bool:
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


# Bumps the generation and publishes the event that carries it, as one step.
_RECORD_SCRIPT = """
local generation = redis.call('INCR', KEYS[1])
local event = cjson.encode({kind = ARGV[2], id = ARGV[3], generation = generation})
redis.call('PUBLISH', ARGV[1], event)
return generation
"""

# Compare-and-set of secret_hash: a regeneration meanwhile wins.
_UPGRADE_SCRIPT = """
if redis.call('HGET', KEYS[1], 'secret_hash') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'secret_hash', ARGV[2])
  return 1
end
return 0
"""

# Sets last_used_at only on a token hash that exists, and never moves it back.
_TOUCH_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  local old = redis.call('HGET', KEYS[1], 'last_used_at')
  if (not old) or old < ARGV[1] then
    redis.call('HSET', KEYS[1], 'last_used_at', ARGV[1])
  end
end
return 0
"""


def _ms(rfc3339: str) -> int:
    return int(clock.from_rfc3339(rfc3339).timestamp() * 1000)


def _strs(raw: Any) -> dict[str, str]:
    """A hash as read with ``decode_responses=True`` (redis-py types it loosely)."""
    return cast(dict[str, str], raw)


def _encodable(fields: Mapping[str, str]) -> Mapping[Any, Any]:
    # redis-py's mapping parameter is invariant in its key type; ours are str.
    return fields
