"""Retention: trimming the audit stream and the histories of deleted tokens, in the background.

``[retention]`` bounds what grows without end: audit entries older than
``audit_max_age_days`` or beyond the newest ``audit_max_entries`` are dropped
(XTRIM), and the history of a token deleted more than ``deleted_history_days``
ago is removed. The token's client_id stays in ``keys.ISSUED_IDS``: it is
never issued again, and its history reads as empty. A live token's history is
never touched, nor is the newest audit entry (the admin token list uses it
to tell "nothing happened" from "the log was cut").

A pass is idempotent, so several processes or replicas running it at once do
no harm; ``serve`` runs it in one process (the one that warms the admin
index). None of this is a change to a credential: no event, no generation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from sidecar import clock
from sidecar.config import RetentionConfig
from sidecar.ops import cancellation
from sidecar.store import keys

log = logging.getLogger("keystile.retention")

#: History keys looked at per round trip.
BATCH = 500


@dataclass(frozen=True)
class Trimmed:
    audit_entries: int = 0
    histories: int = 0


async def apply(redis: aioredis.Redis, policy: RetentionConfig, now: datetime) -> Trimmed:
    """One pass of ``policy`` as of ``now``; redis errors propagate."""
    audit = 0
    if policy.audit_max_entries:
        audit += int(
            await redis.xtrim(keys.AUDIT, maxlen=policy.audit_max_entries, approximate=False)
        )
    if policy.audit_max_age_days:
        audit += await _trim_older(redis, now - timedelta(days=policy.audit_max_age_days))
    histories = 0
    if policy.deleted_history_days:
        cutoff = clock.to_rfc3339(now - timedelta(days=policy.deleted_history_days))
        histories = await _drop_deleted_histories(redis, cutoff)
    return Trimmed(audit, histories)


async def _trim_older(redis: aioredis.Redis, cutoff: datetime) -> int:
    newest: Any = await redis.xrevrange(keys.AUDIT, count=1)
    if not newest:
        return 0
    newest_id = str(newest[0][0])
    cutoff_ms = int(cutoff.timestamp() * 1000)
    # MINID drops entries below it: never past the newest, which stays.
    keep_from = min((cutoff_ms, 0), _order(newest_id))
    return int(
        await redis.xtrim(keys.AUDIT, minid=f"{keep_from[0]}-{keep_from[1]}", approximate=False)
    )


def _order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


async def _drop_deleted_histories(redis: aioredis.Redis, cutoff: str) -> int:
    dropped = 0
    batch: list[str] = []
    async for key in redis.scan_iter(match=f"{keys.TAG}:history:*", count=BATCH):
        batch.append(str(key))
        if len(batch) >= BATCH:
            dropped += await _drop_batch(redis, batch, cutoff)
            batch = []
    return dropped + (await _drop_batch(redis, batch, cutoff) if batch else 0)


async def _drop_batch(redis: aioredis.Redis, history_keys: list[str], cutoff: str) -> int:
    prefix = f"{keys.TAG}:history:"
    async with redis.pipeline(transaction=False) as pipe:
        for key in history_keys:
            token_key = keys.token(key.removeprefix(prefix))
            pipe.eval(_DROP_SCRIPT, 2, key, token_key, cutoff)
        return sum(int(done) for done in await pipe.execute())


# Drops a history whose token is gone and whose last entry, its deletion, is older
# than the cut-off (RFC 3339 UTC strings compare as times). All in one step, so a
# token created meanwhile under that id (which cannot happen: ids are never
# reissued) or a history that grew since is left alone.
_DROP_SCRIPT = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local last = redis.call('LINDEX', KEYS[1], -1)
if not last then return 0 end
local ok, entry = pcall(cjson.decode, last)
if not ok or type(entry) ~= 'table' or entry.action ~= 'deleted' then return 0 end
if type(entry.at) ~= 'string' or entry.at >= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""


async def _passes(redis: aioredis.Redis, policy: RetentionConfig) -> None:
    while True:
        try:
            trimmed = await apply(redis, policy, clock.now())
        except (RedisError, OSError) as exc:
            log.warning("retention pass failed", extra={"fields": {"error": type(exc).__name__}})
        else:
            if trimmed.audit_entries or trimmed.histories:
                fields = {"audit_entries": trimmed.audit_entries, "histories": trimmed.histories}
                log.info("retention pass trimmed the store", extra={"fields": fields})
        await asyncio.sleep(policy.interval_seconds)


@asynccontextmanager
async def running(redis: aioredis.Redis, policy: RetentionConfig) -> AsyncIterator[None]:
    """Passes of ``policy`` every ``interval_seconds`` while the context lasts (none if off)."""
    passes = _passes(redis, policy) if policy.enabled else None
    async with cancellation.running(passes, "keystile-retention"):
        yield
