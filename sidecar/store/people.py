"""The people part of the admin store: users and roles, their lists and their whole life.

Usernames are case-insensitive (the key and the index hold the lowercased
name; the record keeps the spelling it was created with). Deactivating a
user or changing a role changes every token that has it at once: the
verifier reads user and role with the token. ``PeopleStore`` builds on
``tokens.TokenStore`` because deleting a user deletes its tokens in the same
transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from redis.asyncio.client import Pipeline

from sidecar.records import Role, User
from sidecar.store import keys
from sidecar.store.base import StoreBase, hash_fields, hset_mapping, index_score, texts
from sidecar.store.changes import Change, Conflict, Missing, diff, gone
from sidecar.store.tokens import TokenStore, queue_token_deletion


class PeopleStore(TokenStore):
    # -- reads ----------------------------------------------------------------

    async def users(self) -> list[User]:
        async with self.guard():
            names = texts(await self.redis.zrange(keys.USERS, 0, -1))
            async with self.redis.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hgetall(keys.user(name))
                raws = await pipe.execute()
        return [User.from_fields(hash_fields(raw)) for raw in raws if raw]

    async def roles(self) -> list[Role]:
        async with self.guard():
            names = sorted(texts(await self.redis.smembers(keys.ROLES)))
            async with self.redis.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hgetall(keys.role(name))
                raws = await pipe.execute()
        return [Role.from_fields(hash_fields(raw)) for raw in raws if raw]

    # -- users ----------------------------------------------------------------

    async def ensure_user(self, user: User, actor: str) -> User:
        """Create ``user`` unless a user of that name (any case) exists; return the stored one."""

        async def body(pipe: Pipeline) -> User:
            raw = await pipe.hgetall(keys.user(user.username))
            if raw:
                return User.from_fields(hash_fields(raw))
            pipe.multi()
            _queue_new_user(pipe, user, actor)
            return user

        return await self.transaction([keys.user(user.username)], body)

    async def create_user(self, user: User, actor: str) -> User:
        """Store a new user; a user of that name in any case is a Conflict."""

        async def body(pipe: Pipeline) -> User:
            if await pipe.exists(keys.user(user.username)):
                raise Conflict(f"user {user.username!r} exists already")
            pipe.multi()
            _queue_new_user(pipe, user, actor)
            return user

        return await self.transaction([keys.user(user.username)], body)

    async def patch_user(self, username: str, changes: Mapping[str, Any], actor: str) -> User:
        """Change ``display_name``, ``email`` or ``active``; a deactivated user's tokens stop."""

        async def body(pipe: Pipeline) -> User:
            raw = await pipe.hgetall(keys.user(username))
            if not raw:
                raise Missing(username)
            old = User.from_fields(hash_fields(raw))
            new = User(**{**old.public(), **changes})
            pipe.multi()
            if new != old:
                pipe.hset(keys.user(username), mapping=hset_mapping(new.to_fields()))
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
            user = User.from_fields(hash_fields(raw))
            tokens = await self.watched_user_tokens(pipe, username, watched)
            pipe.multi()
            for token in tokens:
                queue_token_deletion(pipe, token, actor)
            pipe.delete(keys.user(username), keys.user_tokens(username))
            pipe.zrem(keys.USERS, username.lower())
            self.record(pipe, Change(actor, "deleted", "user", user.username, gone(user.public())))
            return len(tokens)

        return await self.transaction(watched, body)

    # -- roles ----------------------------------------------------------------

    async def put_role(self, role: Role, actor: str) -> bool:
        """Create or replace a role (True when created); every token that has it changes at once."""

        async def body(pipe: Pipeline) -> bool:
            raw = await pipe.hgetall(keys.role(role.name))
            old = Role.from_fields(hash_fields(raw)).public() if raw else {}
            pipe.multi()
            pipe.hset(keys.role(role.name), mapping=hset_mapping(role.to_fields()))
            pipe.sadd(keys.ROLES, role.name)
            action = "updated" if raw else "created"
            self.record(pipe, Change(actor, action, "role", role.name, diff(old, role.public())))
            return not raw

        return await self.transaction([keys.role(role.name)], body)

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
            old = Role.from_fields(hash_fields(raw)).public()
            self.record(pipe, Change(actor, "deleted", "role", name, gone(old)))

        await self.transaction(watched, body)


def _queue_new_user(pipe: Pipeline, user: User, actor: str) -> None:
    pipe.hset(keys.user(user.username), mapping=hset_mapping(user.to_fields()))
    pipe.zadd(keys.USERS, {user.username.lower(): index_score(user.created_at)})
    StoreBase.record(pipe, Change(actor, "created", "user", user.username, diff({}, user.public())))
