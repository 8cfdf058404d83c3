"""Verification: from a presented credential to a verified identity.

    presented -> cache (HMAC of the credential) -> hit: done, no store, no argon2
              -> unknown-id memory -> wrong-secret limit (429)
              -> one fill per credential: store -> status checks -> argon2 -> cache

Every refusal is an ``InvalidToken`` whose ``reason`` names the cause for logs
and metrics; the client sees one body for all of them. Concurrent requests
with the same credential share one fill (one store read, one argon2 run) and
its outcome. argon2 runs in a bounded thread pool (``HashingPool``): a full
queue is a fast 503. A secret whose hash was made with older argon2
parameters is re-hashed in the background after it verifies.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sidecar import clock
from sidecar.cache import CredentialCache, Fill
from sidecar.credentials import Presented
from sidecar.errors import InactiveToken, InvalidToken, KeystileError
from sidecar.hashing import HashingPool
from sidecar.limits import WrongSecretLimiter
from sidecar.store import Credential, RedisStore

log = logging.getLogger("keystile.verifier")


@dataclass(frozen=True, slots=True)
class Verified:
    """A credential that passed: who it is and what it may reach.

    The cache holds one per credential, so each is kept small: its strings and
    maps are shared with every other that has the same (``verified_identity``).
    """

    client_id: str
    username: str
    role: str | None
    #: When the token expires, in seconds since the epoch: 32 bytes, where its text takes 69.
    expires: int
    access: Mapping[str, str] = field(default_factory=dict)
    role_access: Mapping[str, str] | None = None

    @property
    def expires_at(self) -> str:
        """The expiry as the token's record writes it (RFC 3339, whole seconds)."""
        return clock.to_rfc3339(datetime.fromtimestamp(self.expires, UTC))


class Verifier:
    def __init__(
        self,
        store: RedisStore,
        pool: HashingPool,
        cache: CredentialCache[Verified],
        limiter: WrongSecretLimiter | None = None,
        *,
        ttl: float = 300.0,
    ) -> None:
        self.store = store
        self.pool = pool
        self.cache = cache
        self.limiter = limiter
        self.ttl = ttl
        self._fills: dict[bytes, asyncio.Future[Verified]] = {}
        #: Lookups answered from the cache, from the unknown-id memory, or not (for metrics).
        self.hits = self.unknown_hits = self.misses = 0
        self._upgrades: set[asyncio.Task[None]] = set()

    async def verify(self, presented: Presented, peer: str | None = None) -> Verified:
        """The identity behind ``presented``; ``peer`` (the client's address) keys the 429."""
        key = self.cache.key(presented.client_id, presented.client_secret)
        verified = self.cache.get(key)
        if verified is not None:
            self.hits += 1
            return verified
        if self.cache.is_unknown(presented.client_id):
            self.unknown_hits += 1
            raise InvalidToken("unknown client_id")
        self.misses += 1
        if self.limiter is not None:
            self.limiter.check(presented.client_id, peer)
        fill = self._fills.get(key)
        if fill is None:
            fill = asyncio.ensure_future(self._fill(key, presented, peer))
            self._fills[key] = fill
            fill.add_done_callback(functools.partial(self._landed, key))
        # The fill belongs to every request waiting on it: one leaving must not cancel it.
        return await asyncio.shield(fill)

    def _landed(self, key: bytes, fill: asyncio.Future[Verified]) -> None:
        if self._fills.get(key) is fill:
            del self._fills[key]
        if not fill.cancelled():
            fill.exception()  # retrieved here, so a fill nobody awaits any more logs nothing

    async def _fill(self, key: bytes, presented: Presented, peer: str | None) -> Verified:
        guard = self.cache.begin_fill(presented.client_id)
        try:
            credential = await self.store.load_credential(presented.client_id)
            if credential is None:
                self.cache.put_unknown(guard)
                raise InvalidToken("unknown client_id")
            now = clock.now()
            check_standing(credential, now)
            matched = await self._matching_hash(credential, presented.client_secret, now)
            if matched is None:
                if self.limiter is not None:
                    await self.limiter.wrong_secret(presented.client_id, peer)
                raise InvalidToken("wrong secret")
            lifetime = self._lifetime(credential, matched, now)
            verified = remember(self.cache, guard, key, credential, lifetime)
            if matched == credential.token.secret_hash and self.pool.needs_rehash(matched):
                self._upgrade_later(credential.token.client_id, matched, presented.client_secret)
            return verified
        finally:
            self.cache.end_fill(guard)

    async def _matching_hash(
        self, credential: Credential, secret: str, now: datetime
    ) -> str | None:
        """The stored hash ``secret`` matches: the current one, or the one in its grace period."""
        for secret_hash in (credential.token.secret_hash, credential.token.grace_hash(now)):
            if secret_hash and await self.pool.verify(secret_hash, secret):
                return secret_hash
        return None

    def _lifetime(self, credential: Credential, matched: str, now: datetime) -> float:
        token = credential.token
        ends = [clock.from_rfc3339(token.expires_at)]
        if matched != token.secret_hash and token.grace_until:
            ends.append(clock.from_rfc3339(token.grace_until))
        return min(self.ttl, *((end - now).total_seconds() for end in ends))

    def _upgrade_later(self, client_id: str, old_hash: str, secret: str) -> None:
        task = asyncio.ensure_future(self._upgrade(client_id, old_hash, secret))
        self._upgrades.add(task)
        task.add_done_callback(self._upgrades.discard)

    async def _upgrade(self, client_id: str, old_hash: str, secret: str) -> None:
        try:
            new_hash = await self.pool.hash(secret)
            upgraded = await self.store.upgrade_secret_hash(client_id, old_hash, new_hash)
        except KeystileError as exc:  # busy pool or store: the next verification tries again
            fields = {"client_id": client_id, "reason": exc.reason}
            log.info("hash not upgraded", extra={"fields": fields})
            return
        if upgraded:
            fields = {"client_id": client_id}
            log.info("hash upgraded to the configured argon2 parameters", extra={"fields": fields})

    async def close(self) -> None:
        """Stop background re-hashing and pending fills (at shutdown)."""
        pending: list[asyncio.Future[Any]] = [*self._upgrades, *self._fills.values()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


def check_standing(credential: Credential, now: datetime) -> None:
    """Refuse a revoked or expired token, or one whose user is gone or inactive."""
    token = credential.token
    if token.revoked:
        raise InactiveToken("revoked")
    if token.is_expired(now):
        raise InactiveToken("expired")
    if credential.user is None or not credential.user.active:
        raise InactiveToken("user inactive")


def remember(
    cache: CredentialCache[Verified],
    fill: Fill,
    key: bytes,
    credential: Credential,
    lifetime: float,
) -> Verified:
    """Cache what a hit on ``key`` answers: the one shape every entry has (bench/cachesize.py)."""
    verified = verified_identity(credential, fill.client_id)
    role = credential.token.role  # by name: a role created later changes it too
    cache.put(fill, key, verified, user=verified.username, role=role, lifetime=lifetime)
    return verified


def verified_identity(credential: Credential, client_id: str) -> Verified:
    """What a hit answers; ``client_id`` is the token's as presented, the string the cache holds.

    Only the client_id (one string for the identity and the cache's own
    bookkeeping) and the expiry belong to one token: the username, the role
    name and the access maps are shared by every identity that has the same.
    """
    token = credential.token
    role = credential.role
    return Verified(
        client_id=client_id,
        username=sys.intern(credential.user.username if credential.user else token.user),
        role=sys.intern(role.name) if role else None,
        expires=int(clock.from_rfc3339(token.expires_at).timestamp()),
        access=_shared_map(token.access),
        role_access=_shared_map(role.access) if role else None,
    )


#: Access maps by content: the cache holds one object per distinct map, not one per
#: token (most tokens share a handful of maps), which halves its memory.
_MAPS: dict[frozenset[tuple[str, str]], Mapping[str, str]] = {}
MAX_SHARED_MAPS = 10_000


def _shared_map(access: Mapping[str, str]) -> Mapping[str, str]:
    content = frozenset(access.items())
    shared = _MAPS.get(content)
    if shared is None:
        if len(_MAPS) >= MAX_SHARED_MAPS:
            _MAPS.clear()
        shared = _MAPS[content] = {sys.intern(k): sys.intern(v) for k, v in access.items()}
    return shared
