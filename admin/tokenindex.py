"""The in-memory index behind the token listing, kept in step with Redis.

Fetching 100,000 token hashes on every ``GET /tokens`` would take seconds, so
each admin process keeps a ``Row`` per token, sorted by client_id, and
catches up before answering: every change is in the audit stream (written in
the same transaction as the change, see ``RedisStore.record``), so the index
reads the entries after the last one it saw and re-reads only the tokens they
name. When nothing changed (the generation counter did not move) that costs
one round trip. If the last entry it saw is gone from the stream (a new or
flushed Redis), the index loads everything again.

``last_used_at`` is written by the proxy without a recorded change; the index
refreshes that column in the background, at most once per
``tokens.last_used_interval`` (the precision the spec promises for it
anyway), and only when a list sorts on it; that list uses the values held.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Mapping

from admin.search import Row
from sidecar.errors import StoreUnavailable
from sidecar.lifecycle import AdminStore

log = logging.getLogger("keystile.admin.index")


class TokenIndex:
    def __init__(self, store: AdminStore, last_used_interval: float) -> None:
        self.store = store
        self.last_used_interval = last_used_interval
        #: Parallel lists, sorted by client_id.
        self.client_ids: list[str] = []
        self.rows: list[Row] = []
        self.generation = -1
        self.position = "0-0"
        self.last_used_read = 0.0
        self._lock = asyncio.Lock()
        self._refreshing: asyncio.Future[None] | None = None

    async def current(self, *, fresh_last_used: bool = False) -> list[Row]:
        """The rows sorted by client_id, caught up with every change committed before this call."""
        async with self._lock:
            if self.generation < 0:
                await self._load()
            else:
                await self._catch_up()
            if fresh_last_used and time.monotonic() - self.last_used_read > self.last_used_interval:
                self._start_refresh()
            return self.rows

    async def warm_up(self) -> None:
        """Load the index ahead of the first list; a store that is down is tried again then."""
        try:
            await self.current()
        except StoreUnavailable:
            log.warning("the token index could not be loaded yet; the first list will try")

    async def _load(self) -> None:
        generation, position = await self.store.audit_position()
        client_ids = sorted(await self.store.token_ids())
        raws = await self.store.token_rows(client_ids)
        rows = [Row.from_fields(raw) for raw in raws if raw]
        self.client_ids, self.rows = [row.client_id for row in rows], rows
        self.generation, self.position = generation, position
        self.last_used_read = time.monotonic()

    async def _catch_up(self) -> None:
        generation, position, marks = await self.store.change_marks(self.position)
        if marks is None:
            await self._load()  # another or an emptied store: start over
            return
        if generation == self.generation:
            return
        if not marks:
            await self._load()  # changes without audit entries (a cut log): start over
            return
        changed = sorted({target for kind, target in marks if kind == "token"})
        for client_id, raw in zip(changed, await self.store.token_rows(changed), strict=True):
            self._apply(client_id, raw)
        self.generation, self.position = generation, position

    def _apply(self, client_id: str, raw: Mapping[str, str | None] | None) -> None:
        at = bisect.bisect_left(self.client_ids, client_id)
        present = at < len(self.client_ids) and self.client_ids[at] == client_id
        if raw is None:
            if present:
                del self.client_ids[at], self.rows[at]
        elif present:
            self.rows[at] = Row.from_fields(raw)
        else:
            self.client_ids.insert(at, client_id)
            self.rows.insert(at, Row.from_fields(raw))

    def _start_refresh(self) -> None:
        """Refresh ``last_used_at`` in the background; this answer uses the values held."""
        if self._refreshing is None or self._refreshing.done():
            self.last_used_read = time.monotonic()
            self._refreshing = asyncio.ensure_future(self._refresh_last_used())

    async def _refresh_last_used(self) -> None:
        rows = list(self.rows)
        try:
            values = await self.store.last_used([row.client_id for row in rows])
        except StoreUnavailable:
            log.warning("last_used_at could not be refreshed; the list keeps older values")
            return
        for row, value in zip(rows, values, strict=True):
            row.set_last_used(value)

    async def close(self) -> None:
        if self._refreshing is not None:
            self._refreshing.cancel()
            await asyncio.gather(self._refreshing, return_exceptions=True)
