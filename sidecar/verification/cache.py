"""The verified-credential cache of one process, and its short memory of unknown ids.

An entry is found by a MAC, under a key drawn at random when the process
starts, of the whole presented credential (client_id and secret): never by
client_id alone, so a hit proves the caller holds the secret that argon2
accepted, and a memory dump holds no secret and nothing an attacker could
replay elsewhere. The MAC is BLAKE2b in its keyed mode (RFC 7693), with a
16-byte digest: a dict key needs no more than 128 bits, and 100,000 entries
hold 1.6 MB less than with a whole HMAC-SHA256. The cache is a bounded LRU;
an entry never outlives its ``lifetime`` (the smaller of the token's
remaining life, the grace period of a superseded secret, and
``cache.ttl_seconds``).

Two rules keep a revoked credential out:

- *Lease*: a hit counts only while ``fresh_until`` (set by the invalidation
  listener each time it confirms it has seen every change) lies ahead. A
  listener that stops confirming (lost subscription, unreachable store)
  turns every lookup into a miss within ``cache.max_staleness_seconds``.
- *Fill guard*: a fill (store read, then argon2, then ``put``) registers
  itself first; any invalidation that could concern it meanwhile marks it
  stale, and ``put`` of a stale fill stores nothing. So a fill that read the
  token just before a revoke cannot bring it back after the revoke's event.

Pure module: no asyncio, no redis; time comes from an injectable monotonic clock.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

V = TypeVar("V")

#: Bytes of the per-process MAC key (BLAKE2b takes up to 64), and of each entry's key.
KEY_BYTES = 32
DIGEST_BYTES = 16


@dataclass(slots=True)
class _Entry(Generic[V]):
    value: V
    #: The string ``begin_fill`` was given: the caller shares it with ``value``.
    client_id: str
    #: Lowercased username, to drop every entry of a user on a user event (interned).
    user: str
    role: str | None
    deadline: float


@dataclass(slots=True, eq=False)
class Fill:
    """One store read + argon2 in progress for ``client_id``."""

    client_id: str
    stale: bool = False


class CredentialCache(Generic[V]):
    def __init__(
        self,
        max_entries: int,
        negative_ttl: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.negative_ttl = negative_ttl
        self.monotonic = monotonic
        self._key = os.urandom(KEY_BYTES)
        # Keyed once: each lookup copies this state, a third of the time a new keyed hash takes.
        self._mac = hashlib.blake2b(key=self._key, digest_size=DIGEST_BYTES)
        self._entries: OrderedDict[bytes, _Entry[V]] = OrderedDict()
        #: client_id -> its entry's key, or a tuple of keys while a regeneration's grace
        #: lets two secrets in (most tokens have one entry: no list to allocate for it).
        self._by_client: dict[str, bytes | tuple[bytes, ...]] = {}
        #: client_id -> deadline, for ids the store does not know.
        self._unknown: OrderedDict[str, float] = OrderedDict()
        self._fills: set[Fill] = set()
        #: Hits count only before this monotonic time (see the module's "lease").
        self.fresh_until = 0.0

    def __len__(self) -> int:
        return len(self._entries)

    def key(self, client_id: str, client_secret: str) -> bytes:
        # The separator cannot occur in a client_id, so two credentials never share a message.
        mac = self._mac.copy()
        mac.update(f"{client_id}:{client_secret}".encode())
        return mac.digest()

    # -- lookups --------------------------------------------------------------

    def get(self, key: bytes) -> V | None:
        """The cached value for ``key``, if fresh and not past its deadline."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        now = self.monotonic()
        if now >= self.fresh_until:
            return None
        if now >= entry.deadline:
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return entry.value

    def is_unknown(self, client_id: str) -> bool:
        """Whether the store said recently that no token has this id."""
        deadline = self._unknown.get(client_id)
        if deadline is None:
            return False
        now = self.monotonic()
        if now >= deadline:
            del self._unknown[client_id]
            return False
        return now < self.fresh_until

    # -- fills ----------------------------------------------------------------

    def begin_fill(self, client_id: str) -> Fill:
        fill = Fill(client_id)
        self._fills.add(fill)
        return fill

    def end_fill(self, fill: Fill) -> None:
        self._fills.discard(fill)

    def put(
        self,
        fill: Fill,
        key: bytes,
        value: V,
        *,
        user: str,
        role: str | None,
        lifetime: float,
    ) -> bool:
        """Store ``value`` unless an invalidation overtook ``fill``; answer if it was stored."""
        if fill.stale or lifetime <= 0 or self.max_entries <= 0:
            return False
        if key in self._entries:
            self._remove(key)
        deadline = self.monotonic() + lifetime
        # One string per user and role, however many entries.
        user, role = sys.intern(user.lower()), sys.intern(role) if role else None
        self._entries[key] = _Entry(value, fill.client_id, user, role, deadline)
        held = self._by_client.get(fill.client_id)
        self._by_client[fill.client_id] = key if held is None else (*_keys(held), key)
        while len(self._entries) > self.max_entries:
            self._remove(next(iter(self._entries)))
        return True

    def put_unknown(self, fill: Fill) -> bool:
        if fill.stale or self.negative_ttl <= 0 or self.max_entries <= 0:
            return False
        self._unknown[fill.client_id] = self.monotonic() + self.negative_ttl
        self._unknown.move_to_end(fill.client_id)
        while len(self._unknown) > self.max_entries:
            self._unknown.popitem(last=False)
        return True

    # -- invalidation ---------------------------------------------------------

    def drop_client(self, client_id: str) -> None:
        """A token changed (created, updated, regenerated, revoked, deleted)."""
        for fill in self._fills:
            if fill.client_id == client_id:
                fill.stale = True
        self._unknown.pop(client_id, None)
        for key in _keys(self._by_client.get(client_id, ())):
            self._remove(key)

    def drop_user(self, username: str) -> None:
        """A user changed: every entry of theirs goes (one pass over the cache)."""
        self._stale_all_fills()
        lowered = username.lower()
        self._remove_where(lambda entry: entry.user == lowered)

    def drop_role(self, name: str) -> None:
        """A role changed: every entry of a token with that role goes."""
        self._stale_all_fills()
        self._remove_where(lambda entry: entry.role == name)

    def clear(self) -> None:
        """Forget everything: the listener may have missed a change."""
        self._stale_all_fills()
        self._entries.clear()
        self._by_client.clear()
        self._unknown.clear()

    def _stale_all_fills(self) -> None:
        # A fill does not know its token's user or role until it has read it.
        for fill in self._fills:
            fill.stale = True

    def _remove_where(self, doomed: Callable[[_Entry[V]], bool]) -> None:
        for key in [key for key, entry in self._entries.items() if doomed(entry)]:
            self._remove(key)

    def _remove(self, key: bytes) -> None:
        entry = self._entries.pop(key)
        held = self._by_client.pop(entry.client_id)
        if isinstance(held, tuple):  # the other secret of a grace period stays
            left = tuple(other for other in held if other != key)
            self._by_client[entry.client_id] = left[0] if len(left) == 1 else left


def _keys(held: bytes | tuple[bytes, ...]) -> tuple[bytes, ...]:
    return (held,) if isinstance(held, bytes) else held
