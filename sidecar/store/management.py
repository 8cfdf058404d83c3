"""The admin half of the credential store: the whole life of tokens, users and roles.

``AdminStore`` extends ``RedisStore`` with the reads and writes the admin API
needs. Each write is one MULTI/EXEC transaction guarded by WATCH on the keys
its checks read, and records every change through ``RedisStore.record`` (the
token's history, the audit stream, the generation counter and the
invalidation event land with the change, or nothing does).

Failed preconditions: ``Missing`` (the target does not exist), ``Conflict``
with a ``field`` (the request names something that does not exist, e.g. a
user) or without one (the write contradicts the stored state: exists already,
in use, revoked for good).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from redis.asyncio.client import Pipeline

from sidecar import clock
from sidecar.records import Role, Token, User
from sidecar.store import keys
from sidecar.store.redis_store import Change, Conflict, RedisStore, _encodable, _strs, diff

#: Token fields the index of the admin listing keeps (everything but hashes).
ROW_FIELDS = (
    "client_id",
    "user",
    "description",
    "role",
    "access",
    "revoked",
    "created_at",
    "expires_at",
    "last_used_at",
)
#: Tokens read per Lua call: large enough to amortise the round trip, small
#: enough that the script holds Redis, and decoding holds the caller, for a few ms.
ROWS_PER_CALL = 2000


class Missing(Exception):
    """The record a write or read targets does not exist."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target


class AdminStore(RedisStore):
    # -- reads ----------------------------------------------------------------

    async def tokens(self, client_ids: Sequence[str]) -> list[Token | None]:
        """Many tokens in one round trip, in order; None where one is gone."""
        async with self._guard(), self.redis.pipeline(transaction=False) as pipe:
            for client_id in client_ids:
                pipe.hgetall(keys.token(client_id))
            raws = await pipe.execute()
        return [Token.from_fields(_strs(raw)) if raw else None for raw in raws]

    async def token_id_batches(self, count: int = ROWS_PER_CALL) -> AsyncIterator[list[str]]:
        """Every token's client_id, in batches of about ``count``, in no order (ZSCAN).

        A batch may repeat an id. Every token present from the first batch to
        the last is in one; a token created or deleted meanwhile may or may not
        be. Each batch is one round trip, so a caller can let other work run
        between them rather than decode a million ids at once.
        """
        cursor = 0
        while True:
            async with self._guard():
                cursor, pairs = await self.redis.zscan(keys.TOKENS, cursor, count=count)
            yield [str(member) for member, _ in pairs]
            if cursor == 0:
                return

    async def token_rows(self, client_ids: Sequence[str]) -> list[dict[str, str] | None]:
        """The listing fields (no hash) of many tokens, in order; None where one is gone."""
        return [
            None if row[0] is None else dict(zip(ROW_FIELDS, row, strict=True))
            for row in await self._token_fields(client_ids, ROW_FIELDS)
        ]

    async def last_used(self, client_ids: Sequence[str]) -> list[str | None]:
        """``last_used_at`` of many tokens, in order."""
        return [row[0] or None for row in await self._token_fields(client_ids, ("last_used_at",))]

    async def _token_fields(
        self, client_ids: Sequence[str], fields: Sequence[str]
    ) -> list[list[Any]]:
        """``fields`` of many tokens (str, or None where unset), in order, one Lua call
        per ``ROWS_PER_CALL`` tokens.

        A pipeline of 100,000 HMGETs spends seconds in redis-py packing and
        unpacking commands, the script a fraction.
        """
        rows: list[list[Any]] = []
        for start in range(0, len(client_ids), ROWS_PER_CALL):
            chunk = [keys.token(c) for c in client_ids[start : start + ROWS_PER_CALL]]
            async with self._guard():
                values: Any = await self.redis.eval(_ROWS_SCRIPT, len(chunk), *chunk, *fields)
            rows.extend(values)
        return rows

    async def change_marks(self, after: str) -> tuple[int, str, list[tuple[str, str]] | None]:
        """The generation, the newest audit id, and ``(kind, target)`` of entries after ``after``.

        The marks are None when the entry ``after`` is no longer in the stream
        (another or an emptied Redis): the reader cannot catch up, only start over.
        """
        async with self._guard(), self.redis.pipeline(transaction=True) as pipe:
            pipe.get(keys.GENERATION)
            pipe.xrange(keys.AUDIT, min=after, max=after, count=1)
            pipe.xrange(keys.AUDIT, min=f"({after}" if after != "0-0" else "-", max="+")
            generation, anchor, entries = await pipe.execute()
        if after != "0-0" and not anchor:
            return int(generation or 0), after, None
        marks = []
        newest = after
        for entry_id, fields in entries:
            newest = entry_id
            entry = json.loads(fields["entry"])
            marks.append((entry.get("kind", ""), entry.get("target", "")))
        return int(generation or 0), newest, marks

    async def audit_position(self) -> tuple[int, str]:
        """The generation and the id of the newest audit entry, read together."""
        async with self._guard(), self.redis.pipeline(transaction=True) as pipe:
            pipe.get(keys.GENERATION)
            pipe.xrevrange(keys.AUDIT, max="+", min="-", count=1)
            generation, newest = await pipe.execute()
        return int(generation or 0), newest[0][0] if newest else "0-0"

    async def users(self) -> list[User]:
        async with self._guard():
            names = _texts(await self.redis.zrange(keys.USERS, 0, -1))
            async with self.redis.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hgetall(keys.user(name))
                raws = await pipe.execute()
        return [User.from_fields(_strs(raw)) for raw in raws if raw]

    async def roles(self) -> list[Role]:
        async with self._guard():
            names = sorted(_texts(await self.redis.smembers(keys.ROLES)))
            async with self.redis.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hgetall(keys.role(name))
                raws = await pipe.execute()
        return [Role.from_fields(_strs(raw)) for raw in raws if raw]

    async def history(self, client_id: str) -> list[dict[str, Any]]:
        """Every recorded change of a token ever issued, oldest first (kept after deletion)."""
        async with self._guard(), self.redis.pipeline(transaction=False) as pipe:
            pipe.sismember(keys.ISSUED_IDS, client_id)
            pipe.lrange(keys.token_history(client_id), 0, -1)
            issued, raw = await pipe.execute()
        if not issued:
            raise Missing(client_id)
        return [json.loads(entry) for entry in raw]

    async def audit(self, since_ms: int | None, limit: int) -> list[dict[str, Any]]:
        """The global change log, newest first, entries at or after ``since_ms``."""
        low = f"{since_ms}-0" if since_ms is not None else "-"
        async with self._guard():
            raw: Any = await self.redis.xrevrange(keys.AUDIT, max="+", min=low, count=limit)
        return [json.loads(fields["entry"]) for _, fields in raw]

    # -- users ------------------------------------------------------------------

    async def create_user(self, user: User, actor: str) -> User:
        """Store a new user; a user of that name in any case is a Conflict."""

        async def body(pipe: Pipeline) -> User:
            if await pipe.exists(keys.user(user.username)):
                raise Conflict(f"user {user.username!r} exists already")
            pipe.multi()
            self._write_new_user(pipe, user, actor)
            return user

        return await self.transaction([keys.user(user.username)], body)

    async def patch_user(self, username: str, changes: Mapping[str, Any], actor: str) -> User:
        """Change ``display_name``, ``email`` or ``active``; a deactivated user's tokens stop."""

        async def body(pipe: Pipeline) -> User:
            raw = await pipe.hgetall(keys.user(username))
            if not raw:
                raise Missing(username)
            old = User.from_fields(_strs(raw))
            new = User(**{**old.public(), **changes})
            pipe.multi()
            if new != old:
                pipe.hset(keys.user(username), mapping=_encodable(new.to_fields()))
                change = Change(
                    actor, "updated", "user", new.username, diff(old.public(), new.public())
                )
                self.record(pipe, change)
            return new

        return await self.transaction([keys.user(username)], body)

    async def delete_user(self, username: str, actor: str) -> int:
        """Delete a user and every one of its tokens, at once; the count of tokens deleted."""
        watched = [keys.user(username), keys.user_tokens(username)]

        async def body(pipe: Pipeline) -> int:
            raw = await pipe.hgetall(keys.user(username))
            if not raw:
                raise Missing(username)
            user = User.from_fields(_strs(raw))
            tokens = await self._watched_user_tokens(pipe, username, watched)
            pipe.multi()
            for token in tokens:
                self._write_token_deletion(pipe, token, actor)
            pipe.delete(keys.user(username), keys.user_tokens(username))
            pipe.zrem(keys.USERS, username.lower())
            self.record(pipe, Change(actor, "deleted", "user", user.username, gone(user.public())))
            return len(tokens)

        return await self.transaction(watched, body)

    # -- roles ------------------------------------------------------------------

    async def delete_role(self, name: str, actor: str) -> None:
        """Delete a role no token uses; one in use is a Conflict."""
        watched = [keys.role(name), keys.role_tokens(name)]

        async def body(pipe: Pipeline) -> None:
            raw = await pipe.hgetall(keys.role(name))
            if not raw:
                raise Missing(name)
            in_use = await pipe.scard(keys.role_tokens(name))
            if in_use:
                raise Conflict(f"role {name!r} is used by {in_use} token(s)")
            pipe.multi()
            pipe.delete(keys.role(name))
            pipe.srem(keys.ROLES, name)
            old = Role.from_fields(_strs(raw)).public()
            self.record(pipe, Change(actor, "deleted", "role", name, gone(old)))

        await self.transaction(watched, body)

    # -- tokens -----------------------------------------------------------------

    async def patch_token(self, client_id: str, changes: Mapping[str, Any], actor: str) -> Token:
        """Change ``user``, ``description``, ``role``, ``access`` or ``expires_at``."""
        watched = [keys.token(client_id)]
        if changes.get("user"):
            watched.append(keys.user(changes["user"]))
        if changes.get("role"):
            watched.append(keys.role(changes["role"]))

        async def body(pipe: Pipeline) -> Token:
            old = await self._read_token(pipe, client_id)
            new = old.with_changes(**changes)
            if "user" in changes:
                raw_user = await pipe.hgetall(keys.user(changes["user"]))
                if not raw_user:
                    raise Conflict(f"user {changes['user']!r} does not exist", field="user")
                new = new.with_changes(user=User.from_fields(_strs(raw_user)).username)
            if new.role and new.role != old.role and not await pipe.exists(keys.role(new.role)):
                raise Conflict(f"role {new.role!r} does not exist", field="role")
            pipe.multi()
            self._write_token_update(pipe, old, new, actor, "updated")
            return new

        return await self.transaction(watched, body)

    async def regenerate_token(
        self, client_id: str, secret_hash: str, expires_at: str, grace_until: str | None, actor: str
    ) -> Token:
        """A new secret hash for the same client_id; the old one is kept until ``grace_until``."""

        async def body(pipe: Pipeline) -> Token:
            old = await self._read_token(pipe, client_id)
            if old.revoked:
                raise Conflict("a revoked token cannot be regenerated")
            new = old.with_changes(
                secret_hash=secret_hash,
                expires_at=expires_at,
                regenerated_at=clock.to_rfc3339(clock.now()),
                previous_hash=old.secret_hash if grace_until else None,
                grace_until=grace_until,
            )
            pipe.multi()
            self._write_token_update(pipe, old, new, actor, "regenerated")
            return new

        return await self.transaction([keys.token(client_id)], body)

    async def revoke_tokens(
        self, client_ids: Sequence[str], actor: str, *, owner: str | None = None
    ) -> list[Token]:
        """Revoke all of ``client_ids`` at once (Missing if one is gone); the records after.

        With ``owner``, a token of another user counts as gone.
        """
        watched = [keys.token(client_id) for client_id in client_ids]

        async def body(pipe: Pipeline) -> list[Token]:
            found = await self._read_tokens(client_ids, owner)
            pipe.multi()
            return self._queue_revocations(pipe, found, actor)

        return await self.transaction(watched, body)

    async def revoke_user_tokens(self, username: str, actor: str) -> list[Token]:
        """Revoke every token of a user at once; no such user is a Conflict naming ``user``."""
        watched = [keys.user(username), keys.user_tokens(username)]

        async def body(pipe: Pipeline) -> list[Token]:
            if not await pipe.exists(keys.user(username)):
                raise Conflict(f"user {username!r} does not exist", field="user")
            found = await self._watched_user_tokens(pipe, username, watched)
            pipe.multi()
            return self._queue_revocations(pipe, found, actor)

        return await self.transaction(watched, body)

    async def _watched_user_tokens(
        self, pipe: Pipeline, username: str, watched: list[str]
    ) -> list[Token]:
        """The user's tokens, each WATCHed with ``watched`` before it is read."""
        client_ids = sorted(_texts(await pipe.smembers(keys.user_tokens(username))))
        # A token changed meanwhile (say, its role) must not be written from a stale copy.
        await pipe.watch(*[keys.token(client_id) for client_id in client_ids], *watched)
        return [t for t in await self.tokens(client_ids) if t is not None]

    def _queue_revocations(self, pipe: Pipeline, found: Iterable[Token], actor: str) -> list[Token]:
        now = clock.to_rfc3339(clock.now())
        result = []
        for token in found:
            if token.revoked:
                result.append(token)
                continue
            new = token.with_changes(revoked=True, revoked_at=now, revoked_by=actor)
            self._write_token_update(pipe, token, new, actor, "revoked")
            result.append(new)
        return result

    async def delete_tokens(
        self, client_ids: Sequence[str], actor: str, *, owner: str | None = None
    ) -> int:
        """Delete all of ``client_ids`` or none (Missing names the first one gone).

        With ``owner``, a token of another user counts as gone.
        """
        watched = [keys.token(client_id) for client_id in client_ids]

        async def body(pipe: Pipeline) -> int:
            found = await self._read_tokens(client_ids, owner)
            pipe.multi()
            for token in found:
                self._write_token_deletion(pipe, token, actor)
            return len(found)

        return await self.transaction(watched, body)

    # -- token plumbing ---------------------------------------------------------

    async def _read_token(self, pipe: Pipeline, client_id: str) -> Token:
        raw = await pipe.hgetall(keys.token(client_id))
        if not raw:
            raise Missing(client_id)
        return Token.from_fields(_strs(raw))

    async def _read_tokens(self, client_ids: Sequence[str], owner: str | None) -> list[Token]:
        found = await self.tokens(client_ids)
        for client_id, token in zip(client_ids, found, strict=True):
            if token is None or (owner is not None and token.user.lower() != owner.lower()):
                raise Missing(client_id)
        return [token for token in found if token is not None]

    def _write_token_update(
        self, pipe: Pipeline, old: Token, new: Token, actor: str, action: str
    ) -> None:
        now = clock.now()
        pipe.hset(keys.token(new.client_id), mapping=_encodable(new.to_fields()))
        if old.user.lower() != new.user.lower():
            pipe.srem(keys.user_tokens(old.user), new.client_id)
            pipe.sadd(keys.user_tokens(new.user), new.client_id)
        if old.role != new.role:
            if old.role:
                pipe.srem(keys.role_tokens(old.role), new.client_id)
            if new.role:
                pipe.sadd(keys.role_tokens(new.role), new.client_id)
        changes = diff(_recorded(old, now), _recorded(new, now))
        self.record(pipe, Change(actor, action, "token", new.client_id, changes))

    def _write_token_deletion(self, pipe: Pipeline, token: Token, actor: str) -> None:
        # The history list and the issued-id set stay: the id is never issued again,
        # and its story stays readable.
        pipe.delete(keys.token(token.client_id))
        pipe.zrem(keys.TOKENS, token.client_id)
        pipe.srem(keys.user_tokens(token.user), token.client_id)
        if token.role:
            pipe.srem(keys.role_tokens(token.role), token.client_id)
        changes = gone(token.public(clock.now()))
        self.record(pipe, Change(actor, "deleted", "token", token.client_id, changes))


# HMGET of the listing fields of every key given; all keys share the {ks} hash tag.
_ROWS_SCRIPT = """
local rows = {}
for i, key in ipairs(KEYS) do
  rows[i] = redis.call('HMGET', key, unpack(ARGV))
end
return rows
"""


def _texts(raw: Any) -> list[str]:
    """Members as read with ``decode_responses=True`` (redis-py types them loosely)."""
    return [str(item) for item in raw]


def _recorded(token: Token, now: datetime) -> dict[str, Any]:
    """What history shows of a token: its public view, and when a regeneration's grace ends."""
    return {**token.public(now), "grace_until": token.grace_until}


def gone(record: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The changes of a deletion: every field from its value to null."""
    return {name: (value, None) for name, value in record.items()}
