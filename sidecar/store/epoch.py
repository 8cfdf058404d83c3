"""Noticing a store that was flushed or restored: the epoch, and the generation going back.

``keys.EPOCH`` holds a random value, written once by the first process that
finds it missing (SET NX, so every process agrees on the winner). Each process
remembers the value it saw. A missing or different value later means the data
this process cached is not the data in the store: a FLUSHALL, a failover to a
server without the last writes, or a snapshot restored from before the epoch
was written. A snapshot restored from after it carries the same epoch but an
older generation counter (``keys.GENERATION`` only ever grows), so a counter
below the newest one seen counts as a replaced store too.

The check rides on the invalidation listener's periodic read of the counter
(one MGET instead of a GET), never on the request path. Pure but for
``read``; the listener decides what to drop (sidecar/verification/invalidation.py).
"""

from __future__ import annotations

import secrets

import redis.asyncio as aioredis

from sidecar.store import keys


class EpochWatch:
    def __init__(self) -> None:
        #: The epoch this process trusts; None until the first read.
        self.known: str | None = None

    async def read(self, redis: aioredis.Redis) -> tuple[int, str]:
        """The generation counter and the epoch, writing a new epoch where none is."""
        generation, epoch = await redis.mget(keys.GENERATION, keys.EPOCH)
        if epoch is None:
            # Only the first writer's value stands; everyone reads that one.
            await redis.set(keys.EPOCH, secrets.token_hex(16), nx=True)
            epoch = await redis.get(keys.EPOCH)
        return int(generation or 0), str(epoch)

    def replaced(self, epoch: str, generation: int, newest_seen: int) -> str | None:
        """Why the store is not the one this process knew (None: it is), remembering ``epoch``."""
        known, self.known = self.known, epoch
        if known is not None and epoch != known:
            return "the store's epoch changed (flushed or restored)"
        if generation < newest_seen:
            return "the store's generation went back (restored from an older copy)"
        return None
