"""Waiting, after an admin change, until every live replica acknowledged it (spec section 10).

``Propagation.wait`` reads the registry (sidecar/verification/replicas.py) once,
right after the change committed: the generation then is the one to wait for
(the change's own, or a later one), and the replicas live then are the ones
that must acknowledge it. A replica that acknowledges during the wait is heard
on ``keys.ACKS`` through this process's one subscription (``run``); the
registry is read again every ``REREAD`` seconds in case an announcement was
missed (a resubscription). The wait ends when none is pending, or after
``admin.ack_timeout_seconds``, and answers
``{"replicas", "acknowledged", "slowest_ms", "pending"}``.

A wait holds no store connection: it borrows one for each read, and otherwise
waits on an ``asyncio.Event``, so other admin requests go on meanwhile. A
replica that does not acknowledge in time has stopped trusting its cache
anyway once its lease (``cache.max_staleness_seconds``) ran out
(docs/revocation.md#acknowledged-revocation).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from sidecar.ops.cancellation import raise_if_cancelled
from sidecar.store import keys
from sidecar.verification import replicas

log = logging.getLogger("keystile.propagation")

#: Seconds between reads of the registry while a wait has replicas pending.
REREAD = 0.1
#: Seconds before a lost ack subscription is tried again.
RETRY_DELAY = 0.2
#: The answer where no replica is there to ask.
NOBODY: dict[str, Any] = {"replicas": 0, "acknowledged": 0, "slowest_ms": None, "pending": []}
#: The answer when the registry cannot be read: the change is applied, who saw it is unknown.
UNKNOWN: dict[str, Any] = {**NOBODY, "unknown": True}
#: Longest block in one read of the subscription (so a cancellation is seen).
READ_BLOCK = 1.0


class Propagation:
    def __init__(
        self,
        redis: aioredis.Redis,
        subscriber: aioredis.Redis,
        timeout: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis = redis
        self.subscriber = subscriber
        self.timeout = timeout
        self.monotonic = monotonic
        #: The newest generation each replica announced (or the registry showed).
        self.acked: dict[str, int] = {}
        self._changed = asyncio.Event()

    async def wait(self) -> dict[str, Any]:
        """Until every replica live now acknowledged the current generation, or the timeout."""
        started = self.monotonic()
        try:
            registry = await replicas.read(self.redis)
        except (RedisError, OSError):
            # Each replica's lease still bounds how long it can trust what it cached.
            return {**UNKNOWN}
        self._learn(registry)
        waiting = _Wait(registry.generation, {entry.id for entry in registry.live}, started)
        await self._until_settled(waiting, started + self.timeout)
        return waiting.answer()

    async def _until_settled(self, waiting: _Wait, deadline: float) -> None:
        next_read = waiting.started + REREAD
        while True:
            changed = self._changed  # taken before the check, so no announcement slips between
            waiting.settle(self.acked, self.monotonic())
            now = self.monotonic()
            if waiting.pending <= waiting.gone or now >= deadline:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(deadline, next_read) - now)
            if self.monotonic() >= next_read:
                next_read = self.monotonic() + REREAD
                with contextlib.suppress(RedisError, OSError):
                    # One that stopped being live trusts no cache any more: no use
                    # waiting for it, though it stays pending (it never said so).
                    waiting.gone |= waiting.pending - self._learn(await replicas.read(self.redis))

    def _learn(self, registry: replicas.Registry) -> set[str]:
        """Take in what the registry shows; answer the ids of the live replicas."""
        live = {entry.id: entry.generation for entry in registry.live}
        for gone in self.acked.keys() - live.keys():
            del self.acked[gone]  # no longer live: keeps the map as small as the registry
        for replica_id, generation in live.items():
            self._heard(replica_id, generation)
        return set(live)

    def _heard(self, replica_id: str, generation: int) -> None:
        if generation > self.acked.get(replica_id, -1):
            self.acked[replica_id] = generation
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()

    async def run(self) -> None:
        """Hear the replicas' announcements until cancelled."""
        while True:
            try:
                await self._listen()
            except (RedisError, OSError) as exc:
                raise_if_cancelled()
                log.debug("ack subscription lost", extra={"fields": {"error": repr(exc)}})
                await asyncio.sleep(RETRY_DELAY)

    async def _listen(self) -> None:
        pubsub = self.subscriber.pubsub()
        try:
            await pubsub.subscribe(keys.ACKS)
            while True:
                raise_if_cancelled()
                message = await pubsub.get_message(True, READ_BLOCK)
                if message is not None and message.get("type") == "message":
                    self._announced(str(message["data"]))
        finally:
            await pubsub.aclose()

    def _announced(self, data: str) -> None:
        replica_id, _, generation = data.rpartition(" ")
        with contextlib.suppress(ValueError):
            self._heard(replica_id, int(generation))


class _Wait:
    """One change's wait: the generation, who must acknowledge it, who did and when."""

    def __init__(self, generation: int, replica_ids: set[str], started: float) -> None:
        self.generation = generation
        self.replicas = len(replica_ids)
        self.pending = set(replica_ids)
        #: Those of ``pending`` no longer live: the wait ends without them.
        self.gone: set[str] = set()
        self.started = started
        self.slowest: float | None = None

    def settle(self, acked: dict[str, int], now: float) -> None:
        done = {replica for replica in self.pending if acked.get(replica, -1) >= self.generation}
        if done:
            self.pending -= done
            self.slowest = now - self.started

    def answer(self) -> dict[str, Any]:
        slowest = None if self.slowest is None else round(self.slowest * 1000, 1)
        return {
            "replicas": self.replicas,
            "acknowledged": self.replicas - len(self.pending),
            "slowest_ms": slowest,
            "pending": sorted(self.pending),
        }
