"""Counting each token's allowed uses per API and method class, batched like ``last_used_at``.

The proxy (a forwarded request) and forward-auth (a 200 answer) call
``note(client_id, api, method)`` once the request is authorized: one dict
increment, never a store call. The ``last_used_at`` flusher
(``usage.UsageRecorder.run``) also flushes these counts, every second at
most, in one pipelined round trip (``CredentialStore.add_uses``, ``HINCRBY``
so the replicas' counts add up). A batch that fails is kept, under the day it
was counted on, and sent again with the next: a store outage delays the
counts but never a request. The method class is ``policy.SAFE_METHODS``: what
``read`` allows is ``safe``, the rest ``unsafe``, so the advice that reads
these counts (admin/advice.py) proposes exactly the level each use needed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date

from sidecar import clock
from sidecar.errors import StoreUnavailable
from sidecar.policy import SAFE_METHODS
from sidecar.store.protocol import CredentialStore
from sidecar.usedays import UseKey, first_day

log = logging.getLogger("keystile.usage")


def _today() -> date:
    return clock.now().date()


class UseCounter:
    def __init__(
        self, store: CredentialStore, usage_days: int, today: Callable[[], date] = _today
    ) -> None:
        self.store = store
        self.usage_days = usage_days
        self._today = today
        #: Uses noted since the last flush.
        self._counts: dict[UseKey, int] = {}
        #: Batches not written yet, by the UTC day they were counted on.
        self._unsent: dict[str, dict[UseKey, int]] = {}
        #: The day whose trims ``_trimmed`` lists, and the tokens trimmed on it.
        self._trim_day = ""
        self._trimmed: set[str] = set()

    def note(self, client_id: str, api: str, method: str) -> None:
        """Count one allowed use (the request path's whole cost: one dict increment)."""
        # Folded as sidecar.policy folds it: what was allowed as read counts as safe.
        key = (client_id, api, method.upper() in SAFE_METHODS)
        counts = self._counts
        counts[key] = counts.get(key, 0) + 1

    async def flush(self) -> int:
        """Write every batch not written yet; answer how many counts were written."""
        day = self._today().isoformat()
        counts, self._counts = self._counts, {}
        if counts:
            self._unsent[day] = _merged(self._unsent.get(day, {}), counts)
        if self._trim_day != day:
            self._trim_day, self._trimmed = day, set()
        written = 0
        for batch_day in sorted(self._unsent):
            try:
                written += await self._send(batch_day)
            except StoreUnavailable as exc:
                log.warning("uses not written", extra={"fields": {"reason": exc.reason}})
                break
        return written

    async def _send(self, day: str) -> int:
        batch = self._unsent[day]
        cutoff = first_day(self._today(), self.usage_days)
        await self.store.add_uses(day, batch, self.usage_days, cutoff, self._trimmed)
        del self._unsent[day]
        self._trimmed.update(client_id for client_id, _, _ in batch)
        return len(batch)


def _merged(old: dict[UseKey, int], new: dict[UseKey, int]) -> dict[UseKey, int]:
    merged = dict(old)
    for key, count in new.items():
        merged[key] = merged.get(key, 0) + count
    return merged
