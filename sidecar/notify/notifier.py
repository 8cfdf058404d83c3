"""The notifier of one process: the expiry scan, the delivery consumer and their counter.

``running`` is what ``serve`` opens in each worker's admin app (admin/app.py):
with ``[[notify]]`` webhooks, the lease-guarded expiry scan (``expiry``) and
the consumer (``delivery``); without any, only a trim every ``scan_seconds``
of notices older than ``retry_for_seconds`` (a leak report still queues
them), so the stream never grows without end.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from weakref import WeakKeyDictionary

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter
from redis.exceptions import RedisError

from sidecar import clock
from sidecar.config import Config, NoticesConfig
from sidecar.confignotify import unsigned
from sidecar.notify import expiry
from sidecar.notify.delivery import Count, Delivery
from sidecar.ops.cancellation import background, raise_if_cancelled
from sidecar.store import keys, notices

log = logging.getLogger("keystile.notify")

_COUNTERS: WeakKeyDictionary[CollectorRegistry, Counter] = WeakKeyDictionary()


def counter(registry: CollectorRegistry) -> Count:
    """``keystile_notices_total{event,result}`` on ``registry`` (made once per registry)."""
    if registry not in _COUNTERS:
        _COUNTERS[registry] = Counter(
            "keystile_notices",
            "Webhook calls by notice kind and result (delivered, failed, given_up)",
            ["event", "result"],
            registry=registry,
        )
    made = _COUNTERS[registry]
    return lambda event, result: made.labels(event, result).inc()


def replica_name() -> str:
    """This process's consumer name: readable, and unique across restarts."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def warn_if_unsigned(config: Config) -> None:
    """At start, one warning naming every webhook without a secret: it is called unsigned."""
    missing = unsigned(config.notify)
    if missing:
        fields = {"keys": ", ".join(missing)}
        log.warning("webhooks without a secret are called unsigned", extra={"fields": fields})


def thresholds(config: Config) -> tuple[int, ...]:
    """Every webhook's ``days_before`` that some webhook wants expiry notices for."""
    wanting = [hook for hook in config.notify if notices.EXPIRING in hook.events]
    return tuple(sorted({days for hook in wanting for days in hook.days_before}, reverse=True))


@asynccontextmanager
async def running(
    redis: aioredis.Redis, config: Config, registry: CollectorRegistry
) -> AsyncIterator[None]:
    """The notifier of this process while the context lasts."""
    policy, name = config.notices, replica_name()
    if not config.notify:
        tasks = [background(_trimming(redis, policy), "keystile-notice-trim")]
    else:
        block_ms = max(1, min(1000, int(config.redis.timeout * 500)))
        delivery = Delivery(
            redis, config.notify, policy, name, counter(registry), block_ms=block_ms
        )
        tasks = [background(delivery.run(), "keystile-notice-delivery")]
    async with expiry.running(redis, thresholds(config), policy.scan_seconds, name):
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with suppress(asyncio.CancelledError):
                    await task


async def _trimming(redis: aioredis.Redis, policy: NoticesConfig) -> None:
    while True:
        raise_if_cancelled()
        cutoff_ms = int((clock.now().timestamp() - policy.retry_for_seconds) * 1000)
        try:
            await redis.xtrim(keys.NOTICES, minid=f"{max(cutoff_ms, 0)}-0", approximate=True)
        except (RedisError, OSError) as exc:
            raise_if_cancelled(exc)
            log.warning("notice trim failed", extra={"fields": {"error": type(exc).__name__}})
        await asyncio.sleep(policy.scan_seconds)
