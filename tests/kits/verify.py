"""Real parts for the verifier, cache and invalidation tests: the cheapest argon2 and a
counting one, presented credentials, a revoke."""

from __future__ import annotations

import threading
from typing import Any

from sidecar.config import HashingConfig
from sidecar.credentials import Presented
from sidecar.store.base import StoreBase
from sidecar.store.management import AdminStore
from sidecar.verification.cache import CredentialCache
from sidecar.verification.hashing import Argon2Hasher, HashingPool
from sidecar.verification.limits import WrongSecretLimiter
from sidecar.verification.verifier import Verified, Verifier
from tests.kits.redis import make_config

#: The cheapest argon2id, as the config gives it (tests.kits.redis.CHEAP_HASHING).
CHEAP = make_config().hashing


def presented(client_id: str, secret: str) -> Presented:
    """A Bearer credential as the proxy reads it from a request."""
    return Presented(client_id, secret, "bearer")


def wrong(client_id: str) -> Presented:
    """A well-formed Bearer credential for ``client_id`` with a secret that is not its own."""
    return presented(client_id, "w" * 32)


class CountingHasher(Argon2Hasher):
    """Real argon2id that counts its verifications and can hold them at a gate."""

    def __init__(self, config: HashingConfig, gate: threading.Event | None = None) -> None:
        super().__init__(config)
        self.gate = gate
        self.entered = threading.Event()
        self._lock = threading.Lock()
        self.verifies = 0

    def verify(self, secret_hash: str, secret: str) -> bool:
        with self._lock:
            self.verifies += 1
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        return super().verify(secret_hash, secret)


def make_verifier(
    store: AdminStore,
    hasher: CountingHasher,
    *,
    threads: int = 2,
    queue_size: int = 32,
    wrong_secrets_per_minute: int = 0,
) -> Verifier:
    """A verifier with no listener: its cache lease is granted by hand, for ever."""
    cache: CredentialCache[Verified] = CredentialCache(100, 10.0)
    cache.fresh_until = float("inf")
    limiter = WrongSecretLimiter(store.redis, wrong_secrets_per_minute)
    return Verifier(store, HashingPool(hasher, threads, queue_size), cache, limiter, ttl=300.0)


async def revoke(store: StoreBase, client_id: str, actor: str = "test") -> None:
    """Revoke a token through the store, as the admin API and ``keystile revoke`` do.

    A proxy's ``RedisStore`` gets the admin part on its own connection and commit hooks,
    as an admin app sharing that process would.
    """
    if not isinstance(store, AdminStore):
        admin = AdminStore(store.redis, store.durability)
        admin.after_commit = store.after_commit
        store = admin
    await store.revoke_tokens([client_id], actor)


async def hgetall_calls(store: AdminStore) -> int:
    """How many HGETALL (token, user and role reads) the server has run."""
    stats: dict[str, Any] = await store.redis.info("commandstats")
    return int(stats.get("cmdstat_hgetall", {}).get("calls", 0))
