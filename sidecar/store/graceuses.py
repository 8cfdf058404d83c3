"""The evidence of a regeneration's grace period in the store: who still uses the old secret.

One hash per token, ``keys.grace_uses``, with two fields per client (its
address and user agent, as a JSON pair): ``u:<pair>`` counts the old
secret's uses (HINCRBY, so every replica's batches add up) and ``t:<pair>``
holds the last one (ms since the epoch, only ever moved forward). A token
keeps at most ``MAX_CLIENTS`` distinct clients; the uses of any other land in
one bucket whose pair is ``[null, null]``, so whoever holds the old secret
cannot grow the store without bound. The key expires when the grace period
ends, and a regeneration, an end of grace or a deletion removes it in its own
transaction (``tokens.py``).

A batch is written only while the token's ``grace_until`` is still the one
the uses were accepted under (the script compares it), so a flush that lands
after an end of grace, or after a newer regeneration, adds nothing. Not a
change: no event, no history; not exported (docs/store.md). Unlike the other
writes of ``base``, HINCRBY is not safe to send twice: the client's one retry
after a lost connection may count a batch twice, which evidence of who still
uses an old secret can bear (it is not billing).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis.asyncio.client import Pipeline

from sidecar import clock
from sidecar.records import Token
from sidecar.store import keys
from sidecar.store.base import StoreBase, hash_fields

#: Distinct (address, user agent) pairs kept per token; the rest share the other bucket.
MAX_CLIENTS = 100
#: The pair of the bucket for clients beyond ``MAX_CLIENTS``.
OTHER = json.dumps([None, None])


@dataclass(frozen=True, slots=True)
class Uses:
    """What one process counted of one client of one token since its last flush."""

    count: int
    last_ms: int


#: One client of one grace period: (client_id, grace_until, ``pair`` or ``OTHER``).
Client = tuple[str, str, str]
#: What the recorder writes at once.
Batch = Mapping[Client, Uses]


def pair(address: str, user_agent: str) -> str:
    """A client's field name within the hash (after its ``u:`` or ``t:``)."""
    # ASCII-only: a user agent with bytes that are not UTF-8 still makes a valid field name.
    return json.dumps([address, user_agent])


async def add(store: StoreBase, batch: Batch, now: datetime | None = None) -> None:
    """Add ``batch`` to the store in one pipelined round trip (one script call per token)."""
    by_token: dict[tuple[str, str], list[str]] = {}
    for (client_id, grace_until, name), uses in batch.items():
        args = by_token.setdefault((client_id, grace_until), [])
        args += [name, str(uses.count), str(uses.last_ms)]
    moment = now or clock.now()
    async with store.guard(), store.redis.pipeline(transaction=False) as pipe:
        for (client_id, grace_until), args in by_token.items():
            ends = clock.from_rfc3339(grace_until)
            if ends <= moment:
                continue  # the grace period is over: nothing left to show them to
            token_keys = [keys.token(client_id), keys.grace_uses(client_id)]
            head = [grace_until, str(int(ends.timestamp())), str(MAX_CLIENTS), OTHER]
            pipe.eval(_ADD_SCRIPT, 2, *token_keys, *head, *args)
        await pipe.execute()


async def read(store: StoreBase, client_id: str, grace_until: str) -> dict[str, Any]:
    """The ``grace`` block of a token's record: its uses, newest client first."""
    async with store.guard():
        raw = hash_fields(await store.redis.hgetall(keys.grace_uses(client_id)))
    counted = [(name[2:], int(count)) for name, count in raw.items() if name.startswith("u:")]
    clients = [_client(name, count, raw) for name, count in counted]
    clients.sort(key=lambda client: client["last_used_at"] or "", reverse=True)
    return {
        "until": grace_until,
        "old_secret_uses": sum(client["uses"] for client in clients),
        "last_old_use_at": clients[0]["last_used_at"] if clients else None,
        "clients": clients,
    }


def _client(name: str, uses: int, raw: Mapping[str, str]) -> dict[str, Any]:
    address, user_agent = json.loads(name)
    last_ms = raw.get("t:" + name)
    last = datetime.fromtimestamp(int(last_ms) / 1000, UTC) if last_ms else None
    return {
        "address": address,
        "user_agent": user_agent,
        "uses": uses,
        "last_used_at": clock.to_rfc3339(last) if last else None,
    }


def is_open(token: Token, now: datetime) -> bool:
    """Whether a regeneration's old secret still works: in its grace, on an active token."""
    return token.grace_hash(now) is not None and token.status(now) == "active"


def forget(pipe: Pipeline, client_ids: Sequence[str]) -> None:
    """Queue the removal of these tokens' counts (in a transaction that ends their grace)."""
    for client_id in client_ids:
        pipe.delete(keys.grace_uses(client_id))


# KEYS: the token, its uses. ARGV: grace_until as the uses saw it, when it ends (s),
# MAX_CLIENTS, the other bucket's pair, then (pair, count, last ms) per client.
_ADD_SCRIPT = """
if redis.call('HGET', KEYS[1], 'grace_until') ~= ARGV[1] then
  return 0
end
local bound = tonumber(ARGV[3]) * 2
for i = 5, #ARGV, 3 do
  local name = ARGV[i]
  if redis.call('HEXISTS', KEYS[2], 'u:' .. name) == 0
      and redis.call('HLEN', KEYS[2]) >= bound then
    name = ARGV[4]
  end
  redis.call('HINCRBY', KEYS[2], 'u:' .. name, ARGV[i + 1])
  local last = redis.call('HGET', KEYS[2], 't:' .. name)
  if (not last) or tonumber(last) < tonumber(ARGV[i + 2]) then
    redis.call('HSET', KEYS[2], 't:' .. name, ARGV[i + 2])
  end
end
redis.call('EXPIREAT', KEYS[2], ARGV[2])
return 1
"""
