"""Delivering the queued notices (``keys.NOTICES``) to the webhooks, once across replicas.

Every replica's notifier reads the stream through one consumer group
(``keys.NOTIFY_GROUP``), so each notice goes to one of them. A notice is POSTed
to every webhook whose ``events`` (and, for ``token.expiring``, ``days_before``)
take it; a call that fails (connection error, timeout, a status outside 2xx)
is retried after ``retry_first_seconds``, doubling up to ``retry_max_seconds``,
until ``retry_for_seconds`` after the notice was queued, when it is given up
with a warning. Once every webhook has it (or it is given up), the entry is
acknowledged and deleted in one transaction: the stream holds only what is
still to deliver.

A replica that dies holding notices leaves them pending in the group; another
takes them over (XAUTOCLAIM) once they have been idle ``claim_after_seconds``.
A live replica retrying a notice keeps it (XCLAIM of its own entries, which
resets their idle time) well within that period, so it is not taken from it.

All of this runs in its own tasks with its own ``ClientSession``, at most
``concurrency`` notices at once, far from any request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from sidecar.config import NoticesConfig, WebhookConfig
from sidecar.notify import signing
from sidecar.ops.cancellation import raise_if_cancelled
from sidecar.redaction import redact
from sidecar.store import keys, notices

log = logging.getLogger("keystile.notify")

#: Counts one webhook call's outcome: (event, result).
Count = Callable[[str, str], None]
#: Fields that are numbers in the JSON body (a stream entry holds strings).
NUMBERS = frozenset({"days_before"})


def payload(entry_id: str, fields: Mapping[str, str]) -> dict[str, Any]:
    """The JSON body of a notice: ``event``, its fields, and ``id`` (the delivery id)."""
    rest = {
        k: int(v) if k in NUMBERS and v.isdigit() else v for k, v in fields.items() if k != "kind"
    }
    return {"event": fields.get("kind", ""), **rest, "id": entry_id}


def wanted(hook: WebhookConfig, fields: Mapping[str, str]) -> bool:
    """Whether ``hook`` receives this notice."""
    kind = fields.get("kind", "")
    if kind not in hook.events:
        return False
    days = fields.get("days_before", "")
    return kind != notices.EXPIRING or (days.isdigit() and int(days) in hook.days_before)


def backoff(policy: NoticesConfig, attempt: int) -> float:
    """The wait after failed attempt ``attempt`` (0 the first)."""
    return float(min(policy.retry_first_seconds * 2 ** min(attempt, 40), policy.retry_max_seconds))


class Delivery:
    """The consumer of one process: reads, posts, retries, takes over the abandoned."""

    def __init__(
        self,
        redis: aioredis.Redis,
        hooks: Sequence[WebhookConfig],
        policy: NoticesConfig,
        consumer: str,
        count: Count,
        *,
        block_ms: int = 1000,
    ) -> None:
        self.redis, self.hooks, self.policy = redis, hooks, policy
        self.consumer, self.count = consumer, count
        #: How long one read waits for a notice: under the store's command timeout.
        self.block_ms = block_ms
        #: Notices being delivered by this process, by stream id.
        self.inflight: dict[str, asyncio.Task[None]] = {}
        self.session: aiohttp.ClientSession | None = None
        #: Set when a delivery ends, so a reader waiting for a free slot reads again.
        self._slot = asyncio.Event()

    async def run(self) -> None:
        """Read and take over notices until cancelled; then stop every delivery."""
        self.session = aiohttp.ClientSession()
        tasks = [asyncio.create_task(self._reading()), asyncio.create_task(self._claiming())]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in [*tasks, *self.inflight.values()]:
                task.cancel()
            await asyncio.gather(*tasks, *self.inflight.values(), return_exceptions=True)
            await self.session.close()

    def _free(self) -> int:
        return self.policy.concurrency - len(self.inflight)

    async def _reading(self) -> None:
        grouped = False
        while True:
            raise_if_cancelled()
            if self._free() <= 0:
                self._slot.clear()
                await self._slot.wait()
                continue
            try:
                if not grouped:
                    await self._ensure_group()
                    grouped = True
                streams: dict[Any, Any] = {keys.NOTICES: ">"}
                read: Any = await self.redis.xreadgroup(
                    keys.NOTIFY_GROUP, self.consumer, streams, self._free(), self.block_ms
                )
            except (RedisError, OSError) as exc:
                raise_if_cancelled(exc)
                if "NOGROUP" in str(exc):  # the store was flushed: make the group again
                    grouped = False
                    continue
                log.warning("notice read failed", extra={"fields": {"error": type(exc).__name__}})
                await asyncio.sleep(1)
                continue
            for _, entries in read or ():
                self._start(entries)

    async def _ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(keys.NOTICES, keys.NOTIFY_GROUP, "0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _claiming(self) -> None:
        every = self.policy.claim_after_seconds / 3
        while True:
            await asyncio.sleep(every)
            raise_if_cancelled()
            try:
                await self._keep_own()
                await self._take_over()
                await self._forget_gone()
            except (RedisError, OSError) as exc:
                raise_if_cancelled(exc)
                log.warning("notice claim failed", extra={"fields": {"error": type(exc).__name__}})

    async def _keep_own(self) -> None:
        if self.inflight:
            ids: list[Any] = list(self.inflight)
            await self.redis.xclaim(
                keys.NOTICES, keys.NOTIFY_GROUP, self.consumer, 0, ids, justid=True
            )

    async def _take_over(self) -> None:
        if self._free() <= 0:
            return
        idle_ms = int(self.policy.claim_after_seconds * 1000)
        reply: Any = await self.redis.xautoclaim(
            keys.NOTICES, keys.NOTIFY_GROUP, self.consumer, idle_ms, "0-0", self._free()
        )
        self._start([entry for entry in reply[1] if entry and entry[1] is not None])

    async def _forget_gone(self) -> None:
        # Each start is a new consumer name; without this the group would list
        # every process that ever ran. One with nothing pending holds nothing:
        # dropping a live one costs it nothing (its next read makes it again).
        idle_ms = int(self.policy.claim_after_seconds * 1000)
        consumers: Any = await self.redis.xinfo_consumers(keys.NOTICES, keys.NOTIFY_GROUP)
        for consumer in consumers:
            name = str(consumer["name"])
            if name != self.consumer and not consumer["pending"] and consumer["idle"] > idle_ms:
                await self.redis.xgroup_delconsumer(keys.NOTICES, keys.NOTIFY_GROUP, name)

    def _start(self, entries: Sequence[Any]) -> None:
        for entry_id, fields in entries:
            if entry_id not in self.inflight:
                task = asyncio.create_task(self._deliver(str(entry_id), dict(fields)))
                self.inflight[str(entry_id)] = task

    async def _deliver(self, entry_id: str, fields: dict[str, str]) -> None:
        try:
            pending = [hook for hook in self.hooks if wanted(hook, fields)]
            await self._attempts(entry_id, fields, pending)
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.xack(keys.NOTICES, keys.NOTIFY_GROUP, entry_id)
                pipe.xdel(keys.NOTICES, entry_id)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise_if_cancelled(exc)
            # Still pending: this process or another delivers it again after claim_after.
            log.warning("notice not settled", extra={"fields": {"error": type(exc).__name__}})
        finally:
            self.inflight.pop(entry_id, None)
            self._slot.set()

    async def _attempts(
        self, entry_id: str, fields: dict[str, str], pending: list[WebhookConfig]
    ) -> None:
        body = json.dumps(payload(entry_id, fields), separators=(",", ":")).encode()
        give_up_at = int(entry_id.partition("-")[0]) / 1000 + self.policy.retry_for_seconds
        attempt = 0
        while pending:
            sent = await asyncio.gather(*(self._call(hook, entry_id, fields, body, attempt)
                                          for hook in pending))  # fmt: skip
            pending = [hook for hook, ok in zip(pending, sent, strict=True) if not ok]
            wait = backoff(self.policy, attempt)
            if pending and time.time() + wait > give_up_at:
                for hook in pending:
                    self._gave_up(hook, entry_id, fields, attempt)
                return
            attempt += 1
            if pending:
                await asyncio.sleep(wait)

    async def _call(
        self, hook: WebhookConfig, entry_id: str, fields: dict[str, str], body: bytes, attempt: int
    ) -> bool:
        assert self.session is not None
        event = fields.get("kind", "")
        headers = {
            "Content-Type": "application/json",
            **signing.headers(hook.secret, body, int(time.time())),
            "Keystile-Event": event,
            "Keystile-Delivery": entry_id,
        }
        timeout = aiohttp.ClientTimeout(total=hook.timeout)
        try:
            # A redirect is an answer, not a delivery: the body is not sent elsewhere.
            post = self.session.post(
                hook.url, data=body, headers=headers, timeout=timeout, allow_redirects=False
            )
            async with post as answer:
                ok, why = 200 <= answer.status < 300, f"status {answer.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            ok, why = False, type(exc).__name__
        self.count(event, "delivered" if ok else "failed")
        if not ok:
            where = {"url": redact(hook.url), "event": event, "delivery": entry_id}
            fields_logged = {**where, "attempt": attempt + 1, "error": why}
            log.warning("webhook call failed", extra={"fields": fields_logged})
        return ok

    def _gave_up(self, hook: WebhookConfig, entry_id: str, fields: dict[str, str], n: int) -> None:
        event = fields.get("kind", "")
        self.count(event, "given_up")
        where = {"url": redact(hook.url), "event": event, "delivery": entry_id, "attempts": n + 1}
        log.warning("webhook notice given up", extra={"fields": where})
