"""``last_used_at`` bookkeeping: at most one store write per token per interval.

The proxy and the admin API call ``note(client_id)`` after every successful
verification (from the cache or not); that is a dict lookup, never a store call. A background
task (``run``) flushes what was noted in one batch (``CredentialStore.touch_last_used``,
one pipelined round trip) every ``flush_period`` seconds, and once more on
shutdown. A batch that fails is kept and retried with the next one: a store
outage delays ``last_used_at`` but never a request. The same task flushes the
recorder's ``uses``, the counts per API and method class (sidecar/verification/uses.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from sidecar import clock
from sidecar.errors import StoreUnavailable
from sidecar.ops.cancellation import background
from sidecar.store.protocol import CredentialStore
from sidecar.verification.uses import UseCounter

log = logging.getLogger("keystile.usage")

#: Flush at least this often, so last_used_at lags a use by interval + about a second.
MAX_FLUSH_PERIOD = 1.0


class UsageRecorder:
    def __init__(
        self,
        store: CredentialStore,
        interval: float,
        monotonic: Callable[[], float] = time.monotonic,
        usage_days: int = 90,
    ) -> None:
        self.store = store
        #: Uses per API and method class (sidecar/verification/uses.py), flushed alongside.
        self.uses = UseCounter(store, usage_days)
        self.interval = interval
        self.flush_period = min(interval, MAX_FLUSH_PERIOD)
        self._monotonic = monotonic
        #: client_id -> monotonic time of the use last queued for writing.
        self._queued_at: dict[str, float] = {}
        #: client_id -> RFC 3339 time to write as last_used_at.
        self._pending: dict[str, str] = {}

    def note(self, client_id: str) -> None:
        """Record a use; queue a write unless one was queued less than ``interval`` ago."""
        now = self._monotonic()
        last = self._queued_at.get(client_id)
        if last is not None and now - last < self.interval:
            return
        self._queued_at[client_id] = now
        self._pending[client_id] = clock.to_rfc3339(clock.now())

    async def flush(self) -> int:
        """Write the pending uses in one batch; answer how many tokens were written."""
        batch, self._pending = self._pending, {}
        self._forget_old()
        if not batch:
            return 0
        try:
            await self.store.touch_last_used(batch)
        except StoreUnavailable as exc:
            # Keep the batch; newer uses noted meanwhile win.
            self._pending = {**batch, **self._pending}
            log.warning("last_used_at not written", extra={"fields": {"reason": exc.reason}})
            return 0
        return len(batch)

    def _forget_old(self) -> None:
        horizon = self._monotonic() - self.interval
        self._queued_at = {k: t for k, t in self._queued_at.items() if t > horizon}

    async def run(self) -> None:
        """Flush every ``flush_period`` until cancelled (the owner flushes once more)."""
        while True:
            await asyncio.sleep(self.flush_period)
            await self.flush()
            await self.uses.flush()


@contextlib.asynccontextmanager
async def recording(
    store: CredentialStore, interval: float, usage_days: int = 90
) -> AsyncIterator[UsageRecorder]:
    """A recorder whose flusher runs while the block does, and flushes once more at its end."""
    recorder = UsageRecorder(store, interval, usage_days=usage_days)
    flusher = background(recorder.run(), "keystile-last-used")
    try:
        yield recorder
    finally:
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher
        await recorder.flush()
        await recorder.uses.flush()
