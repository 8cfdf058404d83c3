"""The proxy's store: the reads and touches verification needs, on Redis.

``RedisStore`` implements ``protocol.CredentialStore`` (plus the single-record
reads the admin views share); it changes no record. The admin writes are the
parts in ``tokens``, ``people`` and ``listing``, put together by
``management.AdminStore``. The connection, transaction and encoding helpers
they share are ``base.StoreBase`` and its module.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from sidecar.records import Role, Token, User
from sidecar.store import keys, uses
from sidecar.store.base import StoreBase, hash_fields
from sidecar.store.protocol import Credential
from sidecar.usedays import UseKey


class RedisStore(StoreBase):
    async def get_user(self, username: str) -> User | None:
        async with self.guard():
            raw = await self.redis.hgetall(keys.user(username))
        return User.from_fields(hash_fields(raw)) if raw else None

    async def get_role(self, name: str) -> Role | None:
        async with self.guard():
            raw = await self.redis.hgetall(keys.role(name))
        return Role.from_fields(hash_fields(raw)) if raw else None

    async def get_token(self, client_id: str) -> Token | None:
        async with self.guard():
            raw = await self.redis.hgetall(keys.token(client_id))
        return Token.from_fields(hash_fields(raw)) if raw else None

    async def load_credential(self, client_id: str) -> Credential | None:
        """The token with its user and role, for verification."""
        token = await self.get_token(client_id)
        if token is None:
            return None
        async with self.guard(), self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.user(token.user))
            pipe.hgetall(keys.role(token.role or ""))
            raw_user, raw_role = await pipe.execute()
        return Credential(
            token=token,
            user=User.from_fields(hash_fields(raw_user)) if raw_user else None,
            role=Role.from_fields(hash_fields(raw_role)) if raw_role and token.role else None,
        )

    async def upgrade_secret_hash(self, client_id: str, old_hash: str, new_hash: str) -> bool:
        """Replace a hash made with older argon2 parameters, unless the secret changed since.

        Not a change (same secret, no event, no history): cached verifications stay valid.
        """
        async with self.guard():
            key = keys.token(client_id)
            done = await self.redis.eval(_UPGRADE_SCRIPT, 1, key, old_hash, new_hash)
        return bool(done)

    async def touch_last_used(self, used: Mapping[str, str]) -> None:
        """Write ``last_used_at`` for many tokens in one round trip (no event: not a change).

        ``HSET ... XX``-like behaviour in one Lua call each: only tokens that still
        exist are touched, so a deleted token is not resurrected as a stub hash.
        """
        if not used:
            return
        async with self.guard(), self.redis.pipeline(transaction=False) as pipe:
            for client_id, at in used.items():
                pipe.eval(_TOUCH_SCRIPT, 1, keys.token(client_id), at)
            await pipe.execute()

    async def add_uses(
        self,
        day: str,
        counts: Mapping[UseKey, int],
        usage_days: int,
        trim_before: str | None = None,
        trimmed: Collection[str] = (),
    ) -> None:
        """Add uses per token, API and method class to ``day``, in one round trip."""
        await uses.add_uses(self, day, counts, usage_days, trim_before, trimmed)


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
