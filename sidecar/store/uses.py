"""A token's observed uses in Redis: counts per UTC day, API and method class.

Each token has one hash, ``keys.token_uses``, whose fields read
``<yyyy-mm-dd>|<api>|safe`` or ``...|unsafe`` and whose values are counts.
Writers only ever ``HINCRBY``, so the batches of every replica add up. The
key expires ``usage_days`` after its last write (a token unused that long has
nothing left in any window), and the day's first batch for a token also drops
its fields older than ``usage_days`` (the hash stays bounded while the token
is in use). Like ``last_used_at`` this is not a change: no event, no history,
and never a stub for a token deleted meanwhile (the script checks the token
exists). The hash is deleted with its token (``tokens.queue_token_deletion``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from sidecar.store import keys
from sidecar.store.base import StoreBase, hash_fields
from sidecar.usedays import DayUses, UseKey, field, parse_fields

DAY = 86400


async def add_uses(
    store: StoreBase,
    day: str,
    counts: Mapping[UseKey, int],
    usage_days: int,
    trim_before: str | None = None,
    trimmed: Collection[str] = (),
) -> None:
    """Add ``counts`` to ``day`` in one pipelined round trip.

    Tokens not in ``trimmed`` also lose their fields older than ``trim_before``.
    """
    by_token: dict[str, list[str | int]] = {}
    for (client_id, api, safe), count in counts.items():
        by_token.setdefault(client_id, []).extend((field(day, api, safe), count))
    if not by_token:
        return
    async with store.guard(), store.redis.pipeline(transaction=False) as pipe:
        for client_id, pairs in by_token.items():
            cutoff = trim_before if trim_before and client_id not in trimmed else ""
            token_key, uses_key = keys.token(client_id), keys.token_uses(client_id)
            ttl = usage_days * DAY
            pipe.eval(_ADD_SCRIPT, 2, token_key, uses_key, ttl, cutoff, *pairs)
        await pipe.execute()


async def read_uses(store: StoreBase, client_id: str, since: str) -> list[DayUses]:
    """Every day from ``since`` on (``yyyy-mm-dd``) with uses, oldest first, API by API."""
    async with store.guard():
        raw = hash_fields(await store.redis.hgetall(keys.token_uses(client_id)))
    return parse_fields(raw, since)


# KEYS: the token, its uses. ARGV: the key's lifetime (s), the first day kept
# ("" for no trim), then field/count pairs. Nothing for a token deleted meanwhile.
_ADD_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
for i = 3, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[2], ARGV[i], ARGV[i + 1])
end
if ARGV[2] ~= '' then
  local old = {}
  for _, name in ipairs(redis.call('HKEYS', KEYS[2])) do
    if name < ARGV[2] then
      old[#old + 1] = name
    end
  end
  for i = 1, #old, 1000 do
    redis.call('HDEL', KEYS[2], unpack(old, i, math.min(i + 999, #old)))
  end
end
redis.call('EXPIRE', KEYS[2], ARGV[1])
return 1
"""
