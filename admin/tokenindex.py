"""The in-memory index behind the token listing, kept in step with Redis.

Fetching 100,000 token hashes on every ``GET /tokens`` would cost about a
second, so each admin process keeps a ``Row`` per token and catches up before
answering: every change is in the audit stream (written in the same
transaction as the change, see ``RedisStore.record``), so the index reads the
entries after the last one it saw and re-reads only the tokens they name.
When nothing changed (the generation counter did not move) that costs one
round trip. If the counter went backwards (a new or flushed Redis), the index
loads everything again.

``last_used_at`` is written by the proxy without a recorded change; the index
refreshes that column at most once per ``tokens.last_used_interval`` (the
precision the spec promises for it anyway), and only when a list sorts on it.
"""

from __future__ import annotations

import asyncio
import time

from admin.search import Row
from sidecar.lifecycle import AdminStore


class TokenIndex:
    def __init__(self, store: AdminStore, last_used_interval: float) -> None:
        self.store = store
        self.last_used_interval = last_used_interval
        self.rows: dict[str, Row] = {}
        self.generation = -1
        self.position = "0-0"
        self.last_used_read = 0.0
        self._lock = asyncio.Lock()

    async def current(self, *, fresh_last_used: bool = False) -> dict[str, Row]:
        """The rows, caught up with every change committed before this call."""
        async with self._lock:
            if self.generation < 0:
                await self._load()
            else:
                await self._catch_up()
            if fresh_last_used and time.monotonic() - self.last_used_read > self.last_used_interval:
                await self._refresh_last_used()
            return self.rows

    async def _load(self) -> None:
        generation, position = await self.store.audit_position()
        client_ids = await self.store.token_ids()
        raws = await self.store.token_rows(client_ids)
        self.rows = {raw["client_id"]: Row.from_fields(raw) for raw in raws if raw}
        self.generation, self.position = generation, position
        self.last_used_read = time.monotonic()

    async def _catch_up(self) -> None:
        generation, position, marks = await self.store.change_marks(self.position)
        if generation == self.generation:
            return
        if generation < self.generation or not marks:
            await self._load()  # the store was replaced or its log cut: start over
            return
        changed = sorted({target for kind, target in marks if kind == "token"})
        for client_id, raw in zip(changed, await self.store.token_rows(changed), strict=True):
            if raw is None:
                self.rows.pop(client_id, None)
            else:
                self.rows[client_id] = Row.from_fields(raw)
        self.generation, self.position = generation, position

    async def _refresh_last_used(self) -> None:
        client_ids = list(self.rows)
        values = await self.store.last_used(client_ids)
        for client_id, value in zip(client_ids, values, strict=True):
            row = self.rows.get(client_id)
            if row is not None:
                row.last_used_at = value
        self.last_used_read = time.monotonic()
