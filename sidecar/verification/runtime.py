"""The verification runtime of one process: store, cache, argon2 pool, limiter, listener,
and the flusher of the old secrets' uses during a regeneration's grace (``graceuse``).

The proxy and the admin listeners of one ``keystile serve`` process share one
``Verification`` (``serve`` puts it under ``SHARED`` in both apps), so they
share one cache and one invalidation listener, and a write made through the
admin API drops this process's cache entries before the admin call returns
(``StoreBase.after_commit``), while other processes hear of it through
pub/sub. An app built alone (tests, embedding) opens a ``Verification`` of
its own. The first app to start opens it; the last to stop closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.asyncio import BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError
from redis.maint_notifications import MaintNotificationsConfig

from sidecar.config import Config, RedisConfig
from sidecar.ops.cancellation import background
from sidecar.store.base import StoreBase
from sidecar.store.redis_store import RedisStore
from sidecar.verification.cache import CredentialCache
from sidecar.verification.graceuse import GraceUseRecorder
from sidecar.verification.hashing import HashingPool
from sidecar.verification.invalidation import Listener, local_hook
from sidecar.verification.limits import WrongSecretLimiter
from sidecar.verification.replicas import Presence
from sidecar.verification.topology import cluster_pool, sentinel_pool
from sidecar.verification.verifier import Verified, Verifier

#: Seconds the listener gets to stop at shutdown.
CLOSE_WAIT = 5.0
#: Before the one retry of a command whose connection failed: up to 50 ms, drawn at
#: random so that a pool of connections cut at once does not reconnect at once.
RETRY_BACKOFF = ExponentialWithJitterBackoff(base=0.025, cap=0.05)
#: Seconds between a worker's copies of its verification counters to the shared metrics.
PUBLISH_EVERY = 1.0


#: Connections of the invalidation listener's own pool: its subscription, its counter
#: reads, and the writes of this replica's registry entry (its acknowledgements).
LISTENER_CONNECTIONS = 3


def redis_client(
    url: str,
    timeout: float,
    max_connections: int = RedisConfig.max_connections,
    *,
    topology: RedisConfig | None = None,
) -> aioredis.Redis:
    """The store client of one process (docs/redis-connections.md).

    With a ``topology`` naming sentinels or a cluster, the pool finds the
    primary itself (sidecar/verification/topology.py; ``url`` is then only a
    name in sentinel mode).

    Its pool holds at most ``max_connections`` and a command waits up to
    ``timeout`` for a free one (then ``ConnectionError``: a 503), rather than
    failing at once when a flood has them all. A pooled connection the server
    closed is replaced on checkout, before a command is written to it; one
    that fails under a command is retried once, on ``ConnectionError`` only
    (``sidecar/store/base.py`` says why that is safe for every command Keystile sends).
    """
    pool = _pool(url, timeout, max_connections, retries=1, topology=topology)
    return aioredis.Redis.from_pool(pool)


def listener_client(
    url: str, timeout: float, *, topology: RedisConfig | None = None
) -> aioredis.Redis:
    """The invalidation listener's own client: a flood of lookups cannot take its connections.

    No retry: the listener starts a new subscription after any failure.
    """
    pool = _pool(url, timeout, LISTENER_CONNECTIONS, retries=0, topology=topology)
    return aioredis.Redis.from_pool(pool)


def _pool(
    url: str, timeout: float, size: int, *, retries: int, topology: RedisConfig | None
) -> BlockingConnectionPool:
    options = _options(timeout, size, retries)
    if topology is not None and topology.sentinels:
        return sentinel_pool(topology, **options)
    if topology is not None and topology.cluster:
        return cluster_pool(url, topology, **options)
    return BlockingConnectionPool.from_url(url, **options)


def _options(timeout: float, size: int, retries: int) -> dict[str, Any]:
    return dict(
        max_connections=size,
        timeout=timeout,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
        retry=Retry(RETRY_BACKOFF, retries, supported_errors=(ConnectionError,)),
        # redis-py skips its check for connections closed by the server while these
        # (a Redis Enterprise feature, RESP3 only) are on; "auto" counts as on.
        maint_notifications_config=MaintNotificationsConfig(enabled=False),
    )


class Verification:
    def __init__(self, config: Config, redis_url: str) -> None:
        self.config = config
        self.redis_url = redis_url
        self._users = 0
        self._listening: asyncio.Task[None] | None = None
        self._acknowledging: asyncio.Task[None] | None = None
        # Made here, not in _open, so that `watch` works before the first app starts.
        self.cache: CredentialCache[Verified] = CredentialCache(
            config.cache.max_entries, config.cache.negative_ttl_seconds
        )

    async def _open(self) -> None:
        config = self.config
        self.redis = redis_client(
            self.redis_url,
            config.redis.timeout,
            config.redis.max_connections,
            topology=config.redis,
        )
        self.listener_redis = listener_client(
            self.redis_url, config.redis.timeout, topology=config.redis
        )
        self.store = RedisStore(self.redis)
        self.pool = HashingPool.from_config(config.hashing)
        limiter = WrongSecretLimiter(self.redis, config.limits.wrong_secrets_per_minute)
        self.verifier = Verifier(
            self.store, self.pool, self.cache, limiter, ttl=config.cache.ttl_seconds
        )
        self.listener = Listener(
            self.listener_redis, self.cache, config.cache.max_staleness_seconds
        )
        self.watch(self.store)
        # This process is a replica: it acknowledges what its listener applied.
        self.presence = Presence(self.listener_redis, config.cache.max_staleness_seconds)
        self.listener.presence = self.presence
        self._acknowledging = background(self.presence.run(), "keystile-replica-acks")
        self._listening = background(self.listener.run(), "keystile-invalidation")
        self.grace_uses = GraceUseRecorder(self.store)
        self.verifier.on_old_secret = self.grace_uses.note
        self._flushing = background(self.grace_uses.run(), "keystile-grace-uses")

    def watch(self, store: StoreBase) -> None:
        """Let this process's writes through ``store`` drop its cache entries at once."""
        store.after_commit.append(local_hook(self.cache))

    async def _close(self) -> None:
        self._flushing.cancel()
        # Bounded as the listener's below; what it had pending is kept for this last flush.
        await asyncio.wait([self._flushing], timeout=CLOSE_WAIT)
        await self.grace_uses.flush()
        running = [task for task in (self._listening, self._acknowledging) if task is not None]
        for task in running:
            task.cancel()
        if running:
            # Bounded: a listener stuck in a reconnect must not hold up the shutdown.
            await asyncio.wait(running, timeout=CLOSE_WAIT)
            await self.presence.leave()  # a clean stop: no longer a live replica
        await self.verifier.close()
        self.pool.close()
        await self.listener_redis.aclose()
        await self.redis.aclose()

    @contextlib.asynccontextmanager
    async def used(self) -> AsyncIterator[Verification]:
        """Open on first use, close after the last."""
        if self._users == 0:
            await self._open()
        self._users += 1
        try:
            yield self
        finally:
            self._users -= 1
            if self._users == 0:
                await self._close()


class VerificationMetrics:
    """The verification counters of one process, copied into a Prometheus registry.

    The verifier, the argon2 pool and the listener count in plain integers, free
    on the hot path; ``publish`` adds what they counted since its last call to
    the registry's counters (so a counter only ever goes up) and sets the cache
    gauge. It runs before each scrape and, in a worker, every ``PUBLISH_EVERY``
    seconds, so the other workers' scrapes see these at most that late.
    """

    def __init__(self, registry: CollectorRegistry, verification: Verification) -> None:
        self.verification = verification
        self.lookups = Counter(
            "keystile_credential_cache_lookups",
            "Credential lookups: hit (cached), unknown (remembered unknown id), miss",
            ["result"],
            registry=registry,
        )
        # livesum: the entries every running worker holds; a dead one's are gone.
        self.entries = Gauge(
            "keystile_credential_cache_entries",
            "Verified credentials cached",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.flushes = Counter(
            "keystile_credential_cache_flushes",
            "Whole-cache drops by cause (subscribed, connection lost, missed events)",
            ["why"],
            registry=registry,
        )
        self.verifications = Counter(
            "keystile_argon2_verifications", "argon2 verifications run", registry=registry
        )
        self.refused = Counter(
            "keystile_argon2_refused",
            "argon2 jobs (verifications, issued secrets) refused with 503: the queue was full",
            registry=registry,
        )
        #: What ``publish`` added so far, by counter (a labelled child, or one without labels).
        self._published: dict[Counter, int] = {}

    def publish(self) -> None:
        verification = self.verification
        verifier = verification.verifier
        self._add(self.lookups, "hit", verifier.hits)
        self._add(self.lookups, "unknown", verifier.unknown_hits)
        self._add(self.lookups, "miss", verifier.misses)
        for why, count in list(verification.listener.flushes.items()):
            self._add(self.flushes, why, count)
        self._add(self.verifications, "", verifier.pool.verifications)
        self._add(self.refused, "", verifier.pool.refused)
        self.entries.set(len(verifier.cache))

    def _add(self, counter: Counter, label: str, total: int) -> None:
        child = counter.labels(label) if label else counter
        since = total - self._published.get(child, 0)
        if since > 0:
            child.inc(since)
            self._published[child] = total

    @contextlib.asynccontextmanager
    async def copied(
        self, before_scrape: list[Callable[[], None]], *, periodically: bool
    ) -> AsyncIterator[None]:
        """Publish before each scrape while the block runs (and, ``periodically``, every
        ``PUBLISH_EVERY`` seconds), and once more at its end: a worker that stops
        leaves its last counts in the shared files."""
        before_scrape.append(self.publish)
        copier = asyncio.create_task(self._keep_publishing()) if periodically else None
        try:
            yield
        finally:
            before_scrape.remove(self.publish)
            if copier is not None:
                copier.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await copier
            self.publish()

    async def _keep_publishing(self) -> None:
        while True:
            await asyncio.sleep(PUBLISH_EVERY)
            self.publish()


SHARED = web.AppKey("verification", Verification)


def for_app(app: web.Application, config: Config, redis_url: str) -> Verification:
    """The process's shared ``Verification`` if ``serve`` set one, else a new one."""
    return app.get(SHARED) or Verification(config, redis_url)
