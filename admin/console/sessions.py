"""Web console sessions, kept in Redis so that every ``serve`` worker sees them.

A session is a random id in a cookie. Redis holds, under the SHA-256 of that
id (``keys.console_session``), the client_id of the token that signed in, the
session's CSRF secret, and the token's ``regenerated_at`` at sign-in, with an
idle TTL that each request renews. Neither the token nor its secret is stored:
a session is tied to the token by its client_id, and its standing (revoked,
expired, user inactive, regenerated since) is checked on every request by
``admin/console/auth.py``. A stolen copy of the store's keys cannot be replayed
as a cookie, since the cookie's value is never stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from sidecar.errors import StoreUnavailable
from sidecar.store import keys

#: 256 bits from the OS CSPRNG, as for the CSRF secret.
ID_BYTES = 32


@dataclass(frozen=True)
class Session:
    client_id: str
    csrf: str
    #: The token's ``regenerated_at`` when the session began ("" if never regenerated).
    regenerated_at: str


def _key(session_id: str) -> str:
    return keys.console_session(hashlib.sha256(session_id.encode()).hexdigest())


@contextlib.asynccontextmanager
async def _guard() -> AsyncIterator[None]:
    try:
        yield
    except (RedisError, OSError) as exc:
        raise StoreUnavailable(f"redis: {type(exc).__name__}") from exc


class SessionStore:
    def __init__(self, redis: aioredis.Redis, idle_seconds: int) -> None:
        self.redis = redis
        self.idle_seconds = idle_seconds

    async def begin(self, client_id: str, regenerated_at: str | None) -> tuple[str, Session]:
        """A new session for ``client_id``: its id (for the cookie only) and its record."""
        session_id = secrets.token_urlsafe(ID_BYTES)
        session = Session(client_id, secrets.token_urlsafe(ID_BYTES), regenerated_at or "")
        # Any: redis-py's hset mapping is invariant in its key type; ours are str.
        fields: dict[Any, Any] = {
            "client_id": session.client_id,
            "csrf": session.csrf,
            "regenerated_at": session.regenerated_at,
        }
        async with _guard(), self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(_key(session_id), mapping=fields)
            pipe.expire(_key(session_id), self.idle_seconds)
            await pipe.execute()
        return session_id, session

    async def find(self, session_id: str) -> Session | None:
        """The live session with this id, idle time renewed; None if unknown or idle too long."""
        key = _key(session_id)
        async with _guard(), self.redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(key)
            # EXPIRE renews only a key that exists: an ended session is never brought back.
            pipe.expire(key, self.idle_seconds)
            raw, _ = await pipe.execute()
        if not raw or "client_id" not in raw or "csrf" not in raw:
            return None
        return Session(raw["client_id"], raw["csrf"], raw.get("regenerated_at", ""))

    async def end(self, session_id: str) -> None:
        async with _guard():
            await self.redis.delete(_key(session_id))
