"""The token part of the admin store: issuing, changing, revoking and deleting tokens.

Each write is one transaction (``base.StoreBase.transaction``) that records
its change through ``StoreBase.record``. A token's hash, its indexes (the
live-token set, its user's and its role's sets) and the issued-id set change
together. ``watched_user_tokens`` and ``queue_token_deletion`` are public
because deleting a user (``people``) deletes its tokens in the same
transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from redis.asyncio.client import Pipeline

from sidecar import clock
from sidecar.records import Role, Token, User
from sidecar.store import graceuses, keys, notices
from sidecar.store.base import StoreBase, hash_fields, hset_mapping, index_score, texts
from sidecar.store.changes import Change, Conflict, Missing, diff, gone


class TokenStore(StoreBase):
    #: The expiry thresholds (days) of the ``[[notify]]`` webhooks: a token written with
    #: its expiry inside one gets its notice in the same transaction (admin/app.py sets
    #: it; empty, none is queued here and only the scan finds it).
    notice_days: tuple[int, ...] = ()

    async def tokens(self, client_ids: Sequence[str]) -> list[Token | None]:
        """Many tokens in one round trip, in order; None where one is gone."""
        async with self.guard(), self.redis.pipeline(transaction=False) as pipe:
            for client_id in client_ids:
                pipe.hgetall(keys.token(client_id))
            raws = await pipe.execute()
        return [Token.from_fields(hash_fields(raw)) if raw else None for raw in raws]

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
            stored = token.with_changes(user=User.from_fields(hash_fields(raw_user)).username)
            pipe.multi()
            _queue_new_token(pipe, stored)
            notices.queue_if_due(pipe, stored, self.notice_days)
            public = stored.public(clock.now())
            self.record(pipe, Change(actor, "created", "token", stored.client_id, diff({}, public)))
            return stored

        return await self.transaction(watched, body)

    async def patch_token(
        self,
        client_id: str,
        changes: Mapping[str, Any],
        actor: str,
        *,
        unless_changed: Token | None = None,
        role_access: Mapping[str, str] | None = None,
        releases: bool = True,
    ) -> Token:
        """Change ``user``, ``description``, ``role``, ``access`` or ``expires_at``.

        With ``unless_changed`` (the record a proposal was made from), a Conflict
        if the token's access or role is not that record's any more, or its
        role's access not ``role_access`` (what the proposal read of it). A change
        of ``access`` or ``role`` releases a quarantined token unless ``releases``
        is false (advice, which only tightens).
        """
        watched = [keys.token(client_id)]
        if unless_changed is not None and unless_changed.role:
            watched.append(keys.role(unless_changed.role))
        if changes.get("user"):
            watched.append(keys.user(changes["user"]))
        if changes.get("role"):
            watched.append(keys.role(changes["role"]))

        async def body(pipe: Pipeline) -> Token:
            old = await _read_token(pipe, client_id)
            if unless_changed and not await _as_seen(pipe, old, unless_changed, role_access):
                raise Conflict("the token's access or role changed meanwhile; nothing was changed")
            new = old.with_changes(**changes)
            if old.quarantined_at and releases and {"access", "role"} & changes.keys():
                new = new.with_changes(quarantined_at=None)  # an administrator let it in again
            if "user" in changes:
                raw_user = await pipe.hgetall(keys.user(changes["user"]))
                if not raw_user:
                    raise Conflict(f"user {changes['user']!r} does not exist", field="user")
                new = new.with_changes(user=User.from_fields(hash_fields(raw_user)).username)
            if new.role and new.role != old.role and not await pipe.exists(keys.role(new.role)):
                raise Conflict(f"role {new.role!r} does not exist", field="role")
            pipe.multi()
            queue_token_update(pipe, old, new, actor, "updated")
            notices.queue_if_due(pipe, new, self.notice_days)
            return new

        return await self.transaction(watched, body)

    async def regenerate_token(
        self, client_id: str, secret_hash: str, expires_at: str, grace_until: str | None, actor: str
    ) -> Token:
        """A new secret hash for the same client_id; the old one is kept until ``grace_until``."""

        async def body(pipe: Pipeline) -> Token:
            old = await _read_token(pipe, client_id)
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
            queue_token_update(pipe, old, new, actor, "regenerated")
            notices.queue_if_due(pipe, new, self.notice_days)
            graceuses.forget(pipe, [client_id])  # a new grace period starts with no evidence
            return new

        return await self.transaction([keys.token(client_id)], body)

    async def end_grace(self, client_id: str, actor: str, *, owner: str | None = None) -> Token:
        """Stop accepting the secret a regeneration replaced, now; Conflict without a grace.

        With ``owner``, a token of another user counts as gone.
        """

        async def body(pipe: Pipeline) -> Token:
            old = await _read_token(pipe, client_id)
            if owner is not None and old.user.lower() != owner.lower():
                raise Missing(client_id)
            if not graceuses.is_open(old, clock.now()):
                raise Conflict("the token has no grace period open: no old secret to stop")
            new = old.with_changes(previous_hash=None, grace_until=None)
            pipe.multi()
            queue_token_update(pipe, old, new, actor, "updated")
            graceuses.forget(pipe, [client_id])
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
            return _queue_revocations(pipe, found, actor)

        return await self.transaction(watched, body)

    async def revoke_user_tokens(self, username: str, actor: str) -> list[Token]:
        """Revoke every token of a user at once; no such user is a Conflict naming ``user``."""
        watched = [keys.user(username), keys.user_tokens(username)]

        async def body(pipe: Pipeline) -> list[Token]:
            if not await pipe.exists(keys.user(username)):
                raise Conflict(f"user {username!r} does not exist", field="user")
            found = await self.watched_user_tokens(pipe, username, watched)
            pipe.multi()
            return _queue_revocations(pipe, found, actor)

        return await self.transaction(watched, body)

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
                queue_token_deletion(pipe, token, actor)
            return len(found)

        return await self.transaction(watched, body)

    async def watched_user_tokens(
        self, pipe: Pipeline, username: str, watched: list[str]
    ) -> list[Token]:
        """The user's tokens, each WATCHed with ``watched`` before it is read (inside ``body``)."""
        client_ids = sorted(texts(await pipe.smembers(keys.user_tokens(username))))
        # A token changed meanwhile (say, its role) must not be written from a stale copy.
        await pipe.watch(*[keys.token(client_id) for client_id in client_ids], *watched)
        return [t for t in await self.tokens(client_ids) if t is not None]

    async def _read_tokens(self, client_ids: Sequence[str], owner: str | None) -> list[Token]:
        found = await self.tokens(client_ids)
        for client_id, token in zip(client_ids, found, strict=True):
            if token is None or (owner is not None and token.user.lower() != owner.lower()):
                raise Missing(client_id)
        return [token for token in found if token is not None]


def queue_token_deletion(pipe: Pipeline, token: Token, actor: str) -> None:
    """Queue the deletion of ``token`` and its recorded change on ``pipe`` (after ``multi``)."""
    # The history list and the issued-id set stay: the id is never issued again,
    # and its story stays readable.
    pipe.delete(keys.token(token.client_id))
    pipe.delete(keys.token_uses(token.client_id))  # its observed uses go with it
    graceuses.forget(pipe, [token.client_id])
    pipe.zrem(keys.TOKENS, token.client_id)
    pipe.srem(keys.user_tokens(token.user), token.client_id)
    if token.role:
        pipe.srem(keys.role_tokens(token.role), token.client_id)
    changes = gone(token.public(clock.now()))
    StoreBase.record(pipe, Change(actor, "deleted", "token", token.client_id, changes))


async def _read_token(pipe: Pipeline, client_id: str) -> Token:
    raw = await pipe.hgetall(keys.token(client_id))
    if not raw:
        raise Missing(client_id)
    return Token.from_fields(hash_fields(raw))


def _queue_new_token(pipe: Pipeline, token: Token) -> None:
    pipe.sadd(keys.ISSUED_IDS, token.client_id)
    pipe.hset(keys.token(token.client_id), mapping=hset_mapping(token.to_fields()))
    pipe.zadd(keys.TOKENS, {token.client_id: index_score(token.created_at)})
    pipe.sadd(keys.user_tokens(token.user), token.client_id)
    if token.role:
        pipe.sadd(keys.role_tokens(token.role), token.client_id)


def _queue_revocations(pipe: Pipeline, found: Iterable[Token], actor: str) -> list[Token]:
    now = clock.to_rfc3339(clock.now())
    result = []
    for token in found:
        if token.revoked:
            result.append(token)
            continue
        new = token.with_changes(revoked=True, revoked_at=now, revoked_by=actor)
        queue_token_update(pipe, token, new, actor, "revoked")
        result.append(new)
    return result


def queue_token_update(pipe: Pipeline, old: Token, new: Token, actor: str, action: str) -> None:
    """Queue ``old`` becoming ``new``, with its indexes and recorded change, on ``pipe``
    (also for the leak response's own transaction, sidecar/store/leaks.py)."""
    now = clock.now()
    pipe.hset(keys.token(new.client_id), mapping=hset_mapping(new.to_fields()))
    if old.user.lower() != new.user.lower():
        pipe.srem(keys.user_tokens(old.user), new.client_id)
        pipe.sadd(keys.user_tokens(new.user), new.client_id)
    if old.role != new.role:
        if old.role:
            pipe.srem(keys.role_tokens(old.role), new.client_id)
        if new.role:
            pipe.sadd(keys.role_tokens(new.role), new.client_id)
    changes = diff(_recorded(old, now), _recorded(new, now))
    StoreBase.record(pipe, Change(actor, action, "token", new.client_id, changes))


def _recorded(token: Token, now: datetime) -> dict[str, Any]:
    """What history shows of a token: its public view, and when a regeneration's grace ends."""
    return {**token.public(now), "grace_until": token.grace_until}


async def _as_seen(
    pipe: Pipeline, old: Token, seen: Token, role_access: Mapping[str, str] | None
) -> bool:
    """The token's access and role, and its role's access, are still what was read."""
    if (old.access, old.role) != (seen.access, seen.role):
        return False
    if not old.role:
        return True
    raw = await pipe.hgetall(keys.role(old.role))
    now = dict(Role.from_fields(hash_fields(raw)).access) if raw else None
    return now == (dict(role_access) if role_access is not None else None)
