"""Keeping a process's credential cache true to the store: events, gap checks, lease.

Every change in the store bumps a generation counter and publishes an event
carrying the new value, in one step (``StoreBase.record``). The listener
applies each event to the cache (drop the token's, the user's or the role's
entries). Pub/sub loses what is published while a subscriber is away, and
redis-py resubscribes silently, so the listener trusts nothing it cannot check:

- an event whose generation skips one means events were lost: drop everything;
- every (re)subscription drops everything (spec section 4: a replica that
  loses its subscription drops its whole cache); redis-py's silent
  resubscription shows up as a new ``subscribe`` confirmation;
- every ``check_interval`` the listener reads the counter and then sends a
  PING on the subscribed connection. Redis answers in order, so when the PONG
  arrives every event published before the read has arrived too, unless it
  was lost: a counter ahead of the last event seen means a gap (drop
  everything). Each such confirmation extends the cache's lease to
  ``read time + max_staleness``; without confirmations (connection cut,
  network partition, store down) the lease runs out and every lookup goes to
  the store, which answers or fails closed with 503;
- the same read takes ``keys.EPOCH`` along (one MGET): a store flushed or
  restored (sidecar/store/epoch.py) drops the cache and, through
  ``on_store_replaced``, every index built from the store (the admin list);
- a subscription on another server than the last (a Sentinel or Cluster
  failover, sidecar/verification/topology.py) does the same: the new primary
  may lack the last writes.

So a change reaches every replica's cache within milliseconds when the
subscription is up, and within ``cache.max_staleness_seconds`` in any case.
Each generation applied, and each confirmation (the heartbeat), is told to
the process's ``presence`` in the replica registry (sidecar/verification/replicas.py),
which acknowledges it from its own task.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from sidecar.ops.cancellation import raise_if_cancelled
from sidecar.store import keys
from sidecar.store.changes import Change
from sidecar.store.epoch import EpochWatch
from sidecar.verification.cache import CredentialCache
from sidecar.verification.replicas import Presence

log = logging.getLogger("keystile.invalidation")

#: Confirmations per lease: a lost PONG or two does not end the lease.
CHECKS_PER_LEASE = 4
#: Seconds between attempts to resubscribe while the store is unreachable.
RETRY_DELAY = 0.2


def apply(cache: CredentialCache[Any], kind: str, target: str) -> None:
    """Drop what one change (a token, user or role) may have made stale."""
    if kind == "token":
        cache.drop_client(target)
    elif kind == "user":
        cache.drop_user(target)
    elif kind == "role":
        cache.drop_role(target)
    else:  # a kind this version does not know: the safe answer is to forget everything
        cache.clear()


def local_hook(cache: CredentialCache[Any]) -> Callable[[Sequence[Change]], None]:
    """A ``StoreBase.after_commit`` hook: this process's writes reach its cache at once."""

    def committed(changes: Sequence[Change]) -> None:
        for change in changes:
            apply(cache, change.kind, change.target)

    return committed


class Listener:
    def __init__(
        self,
        redis: aioredis.Redis,
        cache: CredentialCache[Any],
        max_staleness: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis = redis
        self.cache = cache
        self.max_staleness = max_staleness
        self.check_interval = max_staleness / CHECKS_PER_LEASE
        self.monotonic = monotonic
        #: Generation of the newest change applied (-1: none since the last subscription).
        self.known = -1
        #: How often the cache was dropped whole, and why (for logs and tests).
        self.flushes: dict[str, int] = {}
        self._check: tuple[str, int, float] | None = None  # (marker, generation, started)
        self._checks_sent = 0
        self._check_now = True
        self.epoch = EpochWatch()
        #: Called when the store turns out flushed or restored (the admin index drops itself).
        self.on_store_replaced: list[Callable[[], None]] = []
        #: The address of the server subscribed to last (None: not subscribed yet).
        self.server: tuple[Any, ...] | None = None
        #: This process's entry in the replica registry, told each generation applied.
        self.presence: Presence | None = None

    async def run(self) -> None:
        """Listen until cancelled; a failure drops the cache and starts a new subscription."""
        while True:
            try:
                await self._session()
            except (RedisError, OSError) as exc:
                raise_if_cancelled(exc)
                self._flush("connection lost")
                log.warning(
                    "invalidation subscription lost; retrying",
                    extra={"fields": {"error": type(exc).__name__}},
                )
                await asyncio.sleep(RETRY_DELAY)

    async def _session(self) -> None:
        pubsub = self.redis.pubsub()
        try:
            await pubsub.subscribe(keys.EVENTS)
            self._note_server(pubsub.connection)
            next_check = self.monotonic()
            while True:
                raise_if_cancelled()
                if self._check_now or self.monotonic() >= next_check:
                    self._check_now = False
                    next_check = self.monotonic() + self.check_interval
                    await self._send_check(pubsub)
                wait = max(0.0, next_check - self.monotonic())
                message = await _next_message(pubsub, wait)
                if message is not None:
                    self.handle(message)
        finally:
            await pubsub.aclose()

    def _note_server(self, connection: Any) -> None:
        """A subscription on another server than the last (Sentinel or Cluster failover)
        may have lost the last writes: drop every cache and index, as for a flushed store."""
        address = tuple(getattr(connection, name, None) for name in ("host", "port", "path"))
        known, self.server = self.server, address
        if known is not None and address != known:
            self._store_replaced("the primary changed")

    async def _send_check(self, pubsub: PubSub) -> None:
        started = self.monotonic()
        if self._check is not None and started - self._check[2] > self.max_staleness:
            # A subscription that stopped answering PINGs without closing: start afresh
            # rather than send every request to the store until the OS notices.
            self._check = None
            raise RedisError("the subscribed connection stopped answering")
        generation, epoch = await self.epoch.read(self.redis)
        if (why := self.epoch.replaced(epoch, generation, self.known)) is not None:
            self._store_replaced(why)
        self._checks_sent += 1
        marker = f"keystile-check-{self._checks_sent}"
        self._check = (marker, generation, started)
        await pubsub.ping(marker)

    def handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "subscribe":
            # First subscription or a silent resubscription: events may have been missed.
            self._flush("subscribed")
            self.known = -1
            self._check_now = True
        elif kind == "message":
            self._event(message["data"])
        elif kind == "pong":
            self._confirmed(message["data"])

    def _event(self, data: str) -> None:
        try:
            event = json.loads(data)
            kind, target = str(event["kind"]), str(event["id"])
            generation = int(event["generation"])
        except (ValueError, KeyError, TypeError):
            self._flush("unreadable event")
            return
        if self.known >= 0 and generation > self.known + 1:
            self._flush("missed events")
        else:
            apply(self.cache, kind, target)
        self.known = max(self.known, generation)
        if self.presence is not None:
            self.presence.applied(self.known)

    def _confirmed(self, marker: str) -> None:
        if self._check is None or marker != self._check[0]:
            return  # an older check's answer, or redis-py's own health check
        _, generation, started = self._check
        self._check = None
        if self.known < generation and self.known >= 0:
            self._flush("missed events")
        self.known = max(self.known, generation)
        self.cache.fresh_until = started + self.max_staleness
        if self.presence is not None:  # the heartbeat of this replica's registry entry
            self.presence.confirmed(self.known)

    def _store_replaced(self, why: str) -> None:
        """Not the data this process knew: forget the cache, the events seen, every index."""
        log.warning(
            "the store was flushed or restored: dropping every cache and index",
            extra={"fields": {"why": why}},
        )
        self._flush("store replaced")
        self.known = -1
        if self.presence is not None:
            self.presence.forget()
        for hook in self.on_store_replaced:
            hook()

    def _flush(self, why: str) -> None:
        self.cache.clear()
        self.flushes[why] = self.flushes.get(why, 0) + 1
        if why != "subscribed" or self.flushes[why] > 1:
            log.info("credential cache dropped", extra={"fields": {"why": why}})


async def _next_message(pubsub: PubSub, wait: float) -> dict[str, Any] | None:
    """The next message, waiting at most ``wait`` seconds.

    Over RESP3 Redis answers a PING on a subscribed connection with the bare
    message, which redis-py's ``get_message`` misreads when it decodes
    responses; over RESP2 the answer is ``["pong", message]``. Both become
    ``{"type": "pong", "data": message}`` here.
    """
    response = await pubsub.parse_response(block=False, timeout=wait)
    if response is None:
        return None
    if isinstance(response, str | bytes):
        return {"type": "pong", "data": _text(response)}
    message: dict[str, Any] | None = await pubsub.handle_message(response)
    return message


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
