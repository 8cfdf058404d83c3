"""Verification: from a presented credential to a verified identity.

    presented -> cache (HMAC of the credential) -> hit: done, no store, no argon2
              -> unknown-id memory -> wrong-secret limit (429)
              -> one fill per credential: store -> status checks -> argon2 -> cache
                 (one store read per client_id, shared by that id's fills)

Every refusal is an ``InvalidToken`` whose ``reason`` names the cause for logs
and metrics; the client sees one body for all of them. Concurrent requests
with the same credential share one fill (one store read, one argon2 run) and
its outcome, and concurrent fills for one client_id (a flood of guessed
secrets, or of one unknown id) share one store read. argon2 runs in a
bounded thread pool (``HashingPool``): a full queue is a fast 503. A
secret whose hash was made with older argon2 parameters is re-hashed in the
background after it verifies.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from sidecar import clock
from sidecar.credentials import Presented
from sidecar.errors import InactiveToken, InvalidToken, KeystileError
from sidecar.store.protocol import Credential, CredentialStore
from sidecar.verification.cache import CredentialCache, Fill
from sidecar.verification.hashing import HashingPool
from sidecar.verification.limits import WrongSecretLimiter

log = logging.getLogger("keystile.verifier")

K = TypeVar("K")
R = TypeVar("R")


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
    #: Whether the secret presented is the one a regeneration replaced (``GraceVerified``):
    #: a class attribute, so the current secret's entries hold nothing for it.
    old_secret: ClassVar[bool] = False

    @property
    def expires_at(self) -> str:
        """The expiry as the token's record writes it (RFC 3339, whole seconds)."""
        return clock.to_rfc3339(datetime.fromtimestamp(self.expires, UTC))


@dataclass(frozen=True, slots=True)
class GraceVerified(Verified):
    """A credential that passed with the old secret of a regeneration, during its grace.

    Its uses are counted (``graceuse``), from the cache too: the cached value says so.
    """

    #: The token's ``grace_until`` when it was verified: the grace period the uses belong to.
    grace_until: str = ""
    old_secret: ClassVar[bool] = True


class Verifier:
    def __init__(
        self,
        store: CredentialStore,
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
        self._reads: dict[str, asyncio.Future[tuple[Credential | None, Fill]]] = {}
        #: Lookups answered from the cache, from the unknown-id memory, or not (for metrics).
        self.hits = self.unknown_hits = self.misses = 0
        self._upgrades: set[asyncio.Task[None]] = set()
        #: Told of each use of an old secret during its grace (client_id, grace_until,
        #: address, user agent): ``graceuse.GraceUseRecorder.note`` once the runtime opens.
        self.on_old_secret: Callable[[str, str, str, str], None] | None = None

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
            fill.add_done_callback(functools.partial(_landed, self._fills, key))
        # The fill belongs to every request waiting on it: one leaving must not cancel it.
        return await asyncio.shield(fill)

    async def _fill(self, key: bytes, presented: Presented, peer: str | None) -> Verified:
        guard = self.cache.begin_fill(presented.client_id)
        try:
            credential, read = await self._read(presented.client_id)
            if read.stale:  # a change landed while the shared read ran: cache nothing of it
                guard.stale = True
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
            old = matched != credential.token.secret_hash
            verified = remember(self.cache, guard, key, credential, lifetime, old_secret=old)
            if matched == credential.token.secret_hash and self.pool.needs_rehash(matched):
                self._upgrade_later(credential.token.client_id, matched, presented.client_secret)
            return verified
        finally:
            self.cache.end_fill(guard)

    async def _read(self, client_id: str) -> tuple[Credential | None, Fill]:
        """The store's record of ``client_id``, read once for every fill that wants it meanwhile.

        The read has a fill guard of its own, from before it starts to when it
        ends; each fill's guard starts before it joins: together they cover
        everything from the read to the fill's ``put``.
        """
        read = self._reads.get(client_id)
        if read is None:
            read = asyncio.ensure_future(self._read_once(client_id))
            self._reads[client_id] = read
            read.add_done_callback(functools.partial(_landed, self._reads, client_id))
        return await asyncio.shield(read)

    async def _read_once(self, client_id: str) -> tuple[Credential | None, Fill]:
        guard = self.cache.begin_fill(client_id)
        try:
            return await self.store.load_credential(client_id), guard
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
        ends = [token.expires]
        if matched != token.secret_hash and token.grace_ends is not None:
            ends.append(token.grace_ends)
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
        pending: list[asyncio.Future[Any]] = [
            *self._upgrades,
            *self._fills.values(),
            *self._reads.values(),
        ]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


def _landed(flights: dict[K, asyncio.Future[R]], key: K, done: asyncio.Future[R]) -> None:
    """Forget a fill or read that ended (``key`` may have a newer one by now)."""
    if flights.get(key) is done:
        del flights[key]
    if not done.cancelled():
        done.exception()  # retrieved here, so one nobody awaits any more logs nothing


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
    *,
    old_secret: bool = False,
) -> Verified:
    """Cache what a hit on ``key`` answers: the one shape every entry has (bench/cachesize.py)."""
    verified = verified_identity(credential, fill.client_id)
    if old_secret:
        verified = _of_old_secret(verified, credential.token.grace_until or "")
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
        expires=int(token.expires.timestamp()),
        access=_shared_map(token.access),
        role_access=_shared_map(role.access) if role else None,
    )


def _of_old_secret(verified: Verified, grace_until: str) -> GraceVerified:
    known = {f.name: getattr(verified, f.name) for f in fields(Verified)}
    return GraceVerified(**known, grace_until=grace_until)


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
