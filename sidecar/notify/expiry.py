"""Finding tokens near their expiry and queueing one ``token.expiring`` notice for each
(token, threshold), exactly once across replicas and restarts.

A pass walks the live-token index (``keys.TOKENS``) in batches of ``BATCH`` by
rank; each batch is one Lua call that reads every token's ``expires_at``,
``revoked`` and ``user`` where they live and answers only the tokens that are
due: active, not yet expired, inside a threshold whose marker is not set. Only
those cross the wire, so a pass over a million tokens moves a few hundred
bytes per batch and costs Python next to nothing (docs/notify.md has the
figures). A token gets the notice of the tightest threshold it is inside: one
first seen 5 days from expiry with ``[30, 7, 1]`` gets the 7-day notice, not
the 30-day one too (a notice that is already overtaken tells nothing).

Each due token is then queued in its own transaction that WATCHes the token
and its marker (``keys.expiry_notice``, keyed by client_id, threshold and
expiry), re-reads both, and writes the marker with the notice: two replicas
racing on one token queue it once, and a token revoked or regenerated in the
meantime is not noticed from a stale read. The marker lives until a day after
the expiry it names, so a regeneration (a new expiry) starts afresh.

``running`` runs a pass every ``scan_seconds`` on the replica that holds the
lease (``keys.NOTIFY_SCAN_LEASE``, SET NX PX for one period), so N replicas
scan once per period between them, not N times. A clean stop releases the
lease if this process holds it (compare-and-delete), so a restart scans at
once instead of waiting out the period. The scan is the safety net: a token
written already inside a threshold is noticed by its own write
(``notices.queue_if_due``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from sidecar import clock
from sidecar.errors import StoreUnavailable
from sidecar.ops import cancellation
from sidecar.ops.cancellation import raise_if_cancelled
from sidecar.store import keys, notices
from sidecar.store.base import StoreBase
from sidecar.store.notices import tightest

log = logging.getLogger("keystile.notify")

#: Tokens looked at per Lua call: about 2 ms of Redis time each (docs/notify.md).
BATCH = 1000


@dataclass(frozen=True)
class Due:
    """A token inside threshold ``days`` of its expiry whose notice is not yet queued."""

    client_id: str
    expires_at: str
    user: str
    days: int


async def scan(redis: aioredis.Redis, thresholds: Sequence[int], now: datetime) -> int:
    """One pass over every live token as of ``now``; how many notices it queued."""
    store = StoreBase(redis)
    ascending = sorted(set(thresholds))
    queued, start = 0, 0
    while True:
        seen, due = await _batch(redis, start, ascending, now)
        for item in due:
            queued += await _queue_once(store, item)
        if seen < BATCH:
            return queued
        start += BATCH
        await asyncio.sleep(0)  # a long pass leaves room for the rest of the process


async def _batch(
    redis: aioredis.Redis, start: int, ascending: Sequence[int], now: datetime
) -> tuple[int, list[Due]]:
    prefixes = (keys.token(""), keys.expiry_notice("", 0, 0).removesuffix(":0:0"))
    reply: Any = await redis.eval(
        _SCAN_SCRIPT, 1, keys.TOKENS, start, BATCH, int(now.timestamp()), *prefixes, *ascending
    )
    seen, rows = int(reply[0]), reply[1]
    due = []
    for client_id, expires_at, user, days in rows:
        found = int(days)
        if not found:  # a time the script cannot read: Python parses it
            try:
                found = tightest(expires_at, ascending, now) or 0
            except ValueError:
                continue  # `keystile store check` reports the unreadable record
        if found:
            due.append(Due(str(client_id), str(expires_at), str(user), found))
    return seen, due


async def _queue_once(store: StoreBase, due: Due) -> int:
    """Queue ``due``'s notice with its marker, unless another replica did or the token moved."""
    token_key = keys.token(due.client_id)
    expires_s = int(clock.from_rfc3339(due.expires_at).timestamp())
    marker = keys.expiry_notice(due.client_id, due.days, expires_s)

    async def body(pipe: Pipeline) -> int:
        expires_at, revoked, user = await pipe.hmget(token_key, ["expires_at", "revoked", "user"])
        if await pipe.exists(marker) or expires_at != due.expires_at or revoked == "1":
            return 0
        pipe.multi()
        notices.queue_expiring(pipe, due.client_id, str(user), due.expires_at, due.days)
        return 1

    return await store.transaction([token_key, marker], body)


async def _passes(
    redis: aioredis.Redis, thresholds: Sequence[int], every: float, owner: str
) -> None:
    while True:
        raise_if_cancelled()
        try:
            # The lease outlives the pass by design: it is also "scanned this period".
            if await redis.set(keys.NOTIFY_SCAN_LEASE, owner, nx=True, px=int(every * 1000)):
                queued = await scan(redis, thresholds, clock.now())
                if queued:
                    log.info("expiry notices queued", extra={"fields": {"notices": queued}})
        except (RedisError, OSError, StoreUnavailable) as exc:
            raise_if_cancelled(exc)
            log.warning("expiry scan failed", extra={"fields": {"error": type(exc).__name__}})
        await asyncio.sleep(every)


@asynccontextmanager
async def running(
    redis: aioredis.Redis, thresholds: Sequence[int], every: float, owner: str
) -> AsyncIterator[None]:
    """Passes every ``every`` seconds while the context lasts (none without thresholds)."""
    passes = _passes(redis, thresholds, every, owner) if thresholds else None
    try:
        async with cancellation.running(passes, "keystile-expiry-scan"):
            yield
    finally:
        if thresholds:
            await release(redis, owner)


async def release(redis: aioredis.Redis, owner: str) -> None:
    """Drop the scan lease if ``owner`` holds it (another replica's is left alone)."""
    try:
        await redis.eval(_RELEASE_SCRIPT, 1, keys.NOTIFY_SCAN_LEASE, owner)
    except (RedisError, OSError) as exc:  # it expires on its own within one period
        log.warning("scan lease not released", extra={"fields": {"error": type(exc).__name__}})


# KEYS[1]: the lease; ARGV[1]: this process's name. Deletes only its own lease.
_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


# KEYS[1]: the live-token index. ARGV: first rank, count, now (unix s), the token key
# prefix, the marker key prefix, then the thresholds in days, ascending. Reads the
# token hashes it finds in the index: keys not passed in KEYS, which is legal on a
# Cluster only because every key shares the {ks} slot. Answers {looked at, due rows};
# a row is {client_id, expires_at, user, days}, days "0" when expires_at is not the
# form Keystile writes (2026-01-31T12:00:00Z) and Python must judge it.
_SCAN_SCRIPT = """
local function unix(y, m, d, hh, mm, ss)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local doy = math.floor((153 * ((m + 9) % 12) + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return ((era * 146097 + doe - 719468) * 24 + hh) * 3600 + mm * 60 + ss
end
local first = tonumber(ARGV[1])
local ids = redis.call('ZRANGE', KEYS[1], first, first + tonumber(ARGV[2]) - 1)
local now = tonumber(ARGV[3])
local due = {}
for _, id in ipairs(ids) do
  local f = redis.call('HMGET', ARGV[4] .. id, 'expires_at', 'revoked', 'user')
  if f[1] and f[2] ~= '1' then
    local y, mo, d, hh, mm, ss = string.match(f[1],
      '^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)Z$')
    if not y then
      due[#due + 1] = {id, f[1], f[3] or '', '0'}
    else
      local expires = unix(tonumber(y), tonumber(mo), tonumber(d), tonumber(hh),
        tonumber(mm), tonumber(ss))
      local left = expires - now
      for i = 6, #ARGV do
        if left <= 0 then break end
        if left <= tonumber(ARGV[i]) * 86400 then
          local marker = ARGV[5] .. id .. ':' .. ARGV[i] .. ':' .. expires
          if redis.call('EXISTS', marker) == 0 then
            due[#due + 1] = {id, f[1], f[3] or '', ARGV[i]}
          end
          break
        end
      end
    end
  end
end
return {#ids, due}
"""
