"""Revocation latency: from the admin call's return to the first 401 on each replica.

For each token (already cached by every replica): revoke it, start the clock
when the revoke call returns, then poll every replica back to back over a
keep-alive connection until it answers 401. A replica that still says 200
after ``GIVE_UP`` seconds counts as a failure (infinite latency).

``cut=True`` first kills every pub/sub connection on the Redis server
(``CLIENT KILL TYPE pubsub``), so the replicas must notice the loss and drop
their caches: the spec's promise that a replica which lost its subscription
never serves a stale entry.

Revoking goes through the admin API (``POST /admin/v1/tokens/{id}/revoke``)
when it answers; before it existed, the fallback was the store write the
admin API makes: one MULTI/EXEC that marks the token revoked and publishes
the invalidation event (``StoreBase.transaction`` + ``StoreBase.record``).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiohttp
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from sidecar import clock, tokenformat
from sidecar.store import keys
from sidecar.store.changes import Change
from sidecar.store.management import AdminStore

GIVE_UP = 5.0


@dataclass(frozen=True)
class Revocations:
    #: latencies[replica][i]: seconds from the i-th revoke's return to that replica's first 401.
    latencies: list[list[float]]
    via: str

    def flat(self) -> list[float]:
        return [x for replica in self.latencies for x in replica]


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(len(ordered) * p / 100) - 1)]


async def _first_401(session: aiohttp.ClientSession, url: str, token: str, t0: float) -> float:
    headers = {"Authorization": f"Bearer {token}"}
    while time.perf_counter() - t0 < GIVE_UP:
        async with session.get(url, headers=headers) as response:
            await response.read()
            if response.status == 401:
                return time.perf_counter() - t0
    return math.inf


async def _warm(sessions: Sequence[aiohttp.ClientSession], urls: Sequence[str], token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    for session, url in zip(sessions, urls, strict=True):
        async with session.get(url, headers=headers) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"warming a token on {url} answered {response.status}")


Revoke = Callable[[str], Awaitable[None]]


async def admin_revoker(
    session: aiohttp.ClientSession, admin_url: str, admin_token: str
) -> Revoke | None:
    """The admin API's revoke, or None when the admin API does not serve it yet."""
    headers = {"Authorization": f"Bearer {admin_token}"}
    async with session.get(f"{admin_url}/admin/v1/tokens?limit=1", headers=headers) as probe:
        if probe.status != 200:
            return None

    async def revoke(client_id: str) -> None:
        url = f"{admin_url}/admin/v1/tokens/{client_id}/revoke"
        async with session.post(url, headers=headers, json={}) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"revoke answered {response.status}")

    return revoke


def store_revoker(store: AdminStore) -> Revoke:
    """What the admin API does, straight on the store: one atomic write plus its event."""

    async def revoke(client_id: str) -> None:
        key = keys.token(client_id)

        async def body(pipe: Pipeline) -> None:
            await pipe.hget(key, "revoked")
            pipe.multi()
            now = clock.to_rfc3339(clock.now())
            pipe.hset(key, mapping={"revoked": "1", "revoked_at": now, "revoked_by": "bench"})
            change = Change(
                "bench", "revoked", "token", client_id, {"status": ("active", "revoked")}
            )
            store.record(pipe, change)

        await store.transaction([key], body)

    return revoke


async def measure(
    redis_url: str,
    replica_urls: Sequence[str],
    admin_url: str,
    admin_token: str,
    tokens: Sequence[str],
    *,
    cut: bool,
    prefix: str = "ks",
) -> Revocations:
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    sessions = [aiohttp.ClientSession() for _ in replica_urls]
    admin = aiohttp.ClientSession()
    try:
        revoke = await admin_revoker(admin, admin_url, admin_token)
        via = "admin API"
        if revoke is None:
            revoke, via = store_revoker(AdminStore(redis)), "store write (admin API not there yet)"
        latencies: list[list[float]] = [[] for _ in replica_urls]
        for token in tokens:
            await _warm(sessions, replica_urls, token)
            if cut:
                await redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
            await revoke(tokenformat.parse_token(prefix, token).client_id)
            t0 = time.perf_counter()
            found = await asyncio.gather(
                *(_first_401(s, u, token, t0) for s, u in zip(sessions, replica_urls, strict=True))
            )
            for replica, seconds in enumerate(found):
                latencies[replica].append(seconds)
        return Revocations(latencies, via)
    finally:
        for session in [*sessions, admin]:
            await session.close()
        await redis.aclose()
