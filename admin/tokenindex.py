"""The in-memory index behind the token listing, kept in step with Redis.

Fetching 100,000 token hashes on every ``GET /tokens`` would take seconds, so
each admin process keeps a ``Row`` per token, sorted by client_id, and
catches up before answering: every change is in the audit stream (written in
the same transaction as the change, see ``StoreBase.record``), so the index
reads the entries after the last one it saw and re-reads only the tokens they
name. When nothing changed (the generation counter did not move) that costs
one round trip. If the last entry it saw is gone from the stream (a new or
flushed Redis), the index loads everything again.

A full load shares the event loop with the proxy listener of the same
process, so it never holds it for long: it reads the ids in ZSCAN batches,
sorts them a first character at a time, and reads and builds the rows
``ROWS_PER_CALL`` at a time, letting the loop run between every step. List
calls wait for the load (they hold the lock it runs under); proxied requests
do not.

Rows live as long as the index, so each chunk of a load goes to
``gc.freeze()`` as soon as it is built, and no garbage collection walks it
again. Before, the full collections that come each time the heap of
long-lived objects has grown by a quarter walked every row, and held the loop
for up to 0.4 s at 1,000,000 tokens (1.9 s on a busy machine). ``freeze``
acts on every object the collector tracks at that moment, in the whole
process: one that is alive then, sits in a reference cycle and later becomes
garbage is never freed. Over a 1,000,000-token load beside a busy proxy that
was 10 objects. Rows added by a later change are tracked as usual; rows it
replaces are freed by their reference count, as frozen or not.

``last_used_at`` is written by the proxy without a recorded change; the index
refreshes that column in the background, at most once per
``tokens.last_used_interval`` (the precision the spec promises for it
anyway), and only when a list sorts on it; that list uses the values held.
"""

from __future__ import annotations

import asyncio
import bisect
import gc
import logging
import time
from collections.abc import Mapping
from operator import attrgetter

from admin.search import Row
from sidecar.errors import StoreUnavailable
from sidecar.store.listing import ROWS_PER_CALL
from sidecar.store.management import AdminStore

log = logging.getLogger("keystile.admin.index")

_CLIENT_ID = attrgetter("client_id")


class TokenIndex:
    def __init__(self, store: AdminStore, last_used_interval: float) -> None:
        self.store = store
        self.last_used_interval = last_used_interval
        #: Sorted by client_id.
        self.rows: list[Row] = []
        self.generation = -1
        self.position = "0-0"
        self.last_used_read = 0.0
        #: (tokens read, tokens to read) while a full load runs, for logs and tests.
        self.loading: tuple[int, int] | None = None
        self._lock = asyncio.Lock()
        self._refreshing: asyncio.Future[None] | None = None
        #: Bumped by ``drop``: a load that began before a drop does not stand.
        self._drops = 0

    async def current(self, *, fresh_last_used: bool = False) -> list[Row]:
        """The rows sorted by client_id, caught up with every change committed before this call."""
        async with self._lock:
            if self.generation >= 0:
                await self._catch_up()
            while self.generation < 0:  # again if the store was replaced during the load
                await self._load()
            if fresh_last_used and time.monotonic() - self.last_used_read > self.last_used_interval:
                self._start_refresh()
            return self.rows

    def drop(self) -> None:
        """Forget every row at once (the store was flushed or restored); the next list reloads."""
        self._drops += 1
        self.rows, self.generation, self.position = [], -1, "0-0"

    async def warm_up(self) -> None:
        """Load the index ahead of the first list; a store that is down is tried again then."""
        try:
            await self.current()
        except StoreUnavailable:
            log.warning("the token index could not be loaded yet; the first list will try")

    async def _load(self) -> None:
        """Read every token again, a chunk per round trip, letting the loop run in between.

        The proxy listener shares this process's event loop: a load that decoded
        a million rows in one go would hold every proxied request for seconds.
        The position is read first, so the catch-up after the load re-reads
        whatever changed while it ran.
        """
        began, drops = time.monotonic(), self._drops
        generation, position = await self.store.audit_position()
        client_ids = await self._sorted_ids()
        self.loading = (0, len(client_ids))
        rows: list[Row] = []
        for start in range(0, len(client_ids), ROWS_PER_CALL):
            raws = await self.store.token_rows(client_ids[start : start + ROWS_PER_CALL])
            rows.extend(Row.from_fields(raw) for raw in raws if raw)
            gc.freeze()  # see the module's docstring
            self.loading = (start + len(raws), len(client_ids))
            await asyncio.sleep(0)
        self.loading = None
        if drops != self._drops:
            return  # read partly from the store before it was replaced: the next list reloads
        self.rows = rows
        self.generation, self.position = generation, position
        self.last_used_read = time.monotonic()
        log.info(
            "token index loaded",
            extra={"fields": {"tokens": len(rows), "seconds": round(time.monotonic() - began, 2)}},
        )

    async def _sorted_ids(self) -> list[str]:
        """Every client_id once, sorted, without one long sort: by first character, then within."""
        buckets: dict[str, set[str]] = {}
        async for batch in self.store.token_id_batches():
            for client_id in batch:
                bucket = buckets.get(client_id[:1])
                if bucket is None:
                    bucket = buckets[client_id[:1]] = set()
                bucket.add(client_id)
            await asyncio.sleep(0)
        client_ids: list[str] = []
        for first in sorted(buckets):
            client_ids.extend(sorted(buckets.pop(first)))
            await asyncio.sleep(0)
        return client_ids

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
        at = bisect.bisect_left(self.rows, client_id, key=_CLIENT_ID)
        present = at < len(self.rows) and self.rows[at].client_id == client_id
        if raw is None:
            if present:
                del self.rows[at]
        elif present:
            self.rows[at] = Row.from_fields(raw)
        else:
            self.rows.insert(at, Row.from_fields(raw))

    def _start_refresh(self) -> None:
        """Refresh ``last_used_at`` in the background; this answer uses the values held."""
        if self._refreshing is None or self._refreshing.done():
            self.last_used_read = time.monotonic()
            self._refreshing = asyncio.ensure_future(self._refresh_last_used())

    async def _refresh_last_used(self) -> None:
        rows = list(self.rows)
        for start in range(0, len(rows), ROWS_PER_CALL):
            chunk = rows[start : start + ROWS_PER_CALL]
            try:
                values = await self.store.last_used([row.client_id for row in chunk])
            except StoreUnavailable:
                log.warning("last_used_at could not be refreshed; the list keeps older values")
                return
            for row, value in zip(chunk, values, strict=True):
                row.set_last_used(value)

    async def close(self) -> None:
        if self._refreshing is not None:
            self._refreshing.cancel()
            await asyncio.gather(self._refreshing, return_exceptions=True)
