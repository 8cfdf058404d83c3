"""The replica registry: each process's acknowledgement of the generation it has applied.

A replica is one process with an invalidation listener (each worker of each
``keystile serve``). It keeps one field of ``keys.REPLICAS`` (JSON: id, host,
version, started, the generation applied, its lease) and announces each new
generation on ``keys.ACKS``, both in one script that stamps ``seen_at`` with
the server's clock (``TIME``), so hosts whose clocks differ still agree on
who is live. The listener (sidecar/verification/invalidation.py) calls
``applied`` after each event it applied and ``confirmed`` after each gap
check, which is also the heartbeat: every ``max_staleness / 4`` seconds.
Nothing here runs on the request path; ``run`` writes from its own task and
coalesces a burst of events into one write.

A replica whose ``seen_at`` is older than its own lease has stopped trusting
its cache (its listener has not confirmed for that long), so it is not live:
``read`` leaves it out and removes its field, in the same script. A clean
shutdown removes the field itself (``leave``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from sidecar import clock
from sidecar.ops.cancellation import raise_if_cancelled
from sidecar.store import keys

log = logging.getLogger("keystile.replicas")

#: Seconds to wait after a failed write before the next one may go (the next heartbeat).
RETRY_DELAY = 0.2
#: Seconds a clean shutdown waits to remove its entry.
LEAVE_WAIT = 1.0

#: Write one replica's entry, stamped with the server's time, and announce a new generation
#: (KEYS: the registry; ARGV: the id, the entry without ``seen_at``, the ack channel,
#: "1" to announce: a heartbeat that applied nothing new publishes nothing).
ACK_SCRIPT = """
local now = redis.call('TIME')
local entry = cjson.decode(ARGV[2])
entry['seen_at'] = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(entry))
if ARGV[4] == '1' then
  redis.call('PUBLISH', ARGV[3], ARGV[1] .. ' ' .. ARGV[5])
end
return 1
"""

#: The generation, the server's time (ms) and the live entries; removes the others
#: (KEYS: the generation, the registry).
READ_SCRIPT = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local live = {}
local fields = redis.call('HGETALL', KEYS[2])
for i = 1, #fields, 2 do
  local ok, entry = pcall(cjson.decode, fields[i + 1])
  if ok and type(entry) == 'table' and tonumber(entry['seen_at'])
      and tonumber(entry['lease_ms']) and now_ms - entry['seen_at'] <= entry['lease_ms'] then
    table.insert(live, fields[i + 1])
  else
    redis.call('HDEL', KEYS[2], fields[i])
  end
end
return {redis.call('GET', KEYS[1]) or '0', tostring(now_ms), live}
"""


@dataclass(frozen=True)
class ReplicaEntry:
    """One live replica as the registry holds it."""

    id: str
    host: str
    version: str
    started: str
    generation: int
    seen_at_ms: int

    @classmethod
    def parse(cls, text: str) -> ReplicaEntry:
        entry = json.loads(text)
        return cls(
            id=str(entry["id"]),
            host=str(entry.get("host", "")),
            version=str(entry.get("version", "")),
            started=str(entry.get("started", "")),
            generation=int(entry.get("generation", -1)),
            seen_at_ms=int(entry["seen_at"]),
        )

    def public(self, current: int) -> dict[str, Any]:
        """What ``GET /admin/v1/replicas`` shows; ``lag``: generations not yet applied."""
        seen = clock.to_rfc3339(datetime.fromtimestamp(self.seen_at_ms / 1000, UTC))
        return {
            "id": self.id,
            "host": self.host,
            "version": self.version,
            "started": self.started,
            "generation": self.generation,
            # Spec section 10's own words for it; "generation" stays for the CLI and console.
            "last_generation_applied": self.generation,
            "lag": max(0, current - self.generation),
            "seen_at": seen,
        }


@dataclass(frozen=True)
class Registry:
    """One read of the registry: the generation then, the server's time, the live replicas."""

    generation: int
    now_ms: int
    live: tuple[ReplicaEntry, ...]


async def read(redis: aioredis.Redis) -> Registry:
    """The live replicas (the others' fields removed); raises RedisError/OSError."""
    generation, now_ms, fields = await redis.eval(READ_SCRIPT, 2, keys.GENERATION, keys.REPLICAS)
    live = []
    for text in fields:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            live.append(ReplicaEntry.parse(text))
    return Registry(int(generation), int(now_ms), tuple(sorted(live, key=lambda e: e.id)))


def version() -> str:
    try:
        return metadata.version("keystile")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


class Presence:
    """This process's entry in the registry, written by its own task (``run``)."""

    def __init__(self, redis: aioredis.Redis, lease: float) -> None:
        self.redis = redis
        host = socket.gethostname()
        #: Unique per process start: a restarted worker is a new replica.
        self.id = f"{host}:{os.getpid()}:{secrets.token_hex(3)}"
        self._entry = {
            "id": self.id,
            "host": host,
            "version": version(),
            "started": clock.to_rfc3339(clock.now()),
            "lease_ms": int(lease * 1000),
        }
        self.applied_generation = -1
        self.written_generation = -1
        self._due = asyncio.Event()

    def applied(self, generation: int) -> None:
        """The listener applied everything up to ``generation``: acknowledge it soon."""
        self.applied_generation = max(self.applied_generation, generation)
        if generation > self.written_generation:
            self._due.set()

    def confirmed(self, generation: int) -> None:
        """A gap check confirmed ``generation``: acknowledge it and refresh ``seen_at``."""
        self.applied_generation = max(self.applied_generation, generation)
        self._due.set()

    def forget(self) -> None:
        """The store was replaced: generations seen before mean nothing now."""
        self.applied_generation = self.written_generation = -1

    async def run(self) -> None:
        """Write the entry whenever it is due, until cancelled."""
        while True:
            await self._due.wait()
            self._due.clear()
            generation = self.applied_generation
            if generation < 0:
                continue  # nothing confirmed since (re)subscribing: not live yet
            try:
                await self._write(generation)
            except (RedisError, OSError) as exc:
                # The next heartbeat writes again; until then the entry ages towards not live.
                raise_if_cancelled(exc)
                log.debug("replica entry not written", extra={"fields": {"error": repr(exc)}})
                await asyncio.sleep(RETRY_DELAY)
                self._due.set()  # an ack lost now would leave a revoke pending till its timeout

    async def _write(self, generation: int) -> None:
        entry = json.dumps({**self._entry, "generation": generation})
        announce = "1" if generation != self.written_generation else "0"
        await self.redis.eval(
            ACK_SCRIPT, 1, keys.REPLICAS, self.id, entry, keys.ACKS, announce, str(generation)
        )
        self.written_generation = generation

    async def leave(self) -> None:
        """Remove this replica's entry (a clean shutdown); best effort, bounded."""
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            await asyncio.wait_for(self.redis.hdel(keys.REPLICAS, self.id), LEAVE_WAIT)
