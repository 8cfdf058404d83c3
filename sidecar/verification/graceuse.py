"""Counting the old secret's uses during a regeneration's grace period (rotation evidence).

The authenticator calls ``note`` (through ``Verifier.on_old_secret``) for
each request the old secret let in, whether its verification came from the
cache or not: a ``verifier.GraceVerified`` says which secret it was (the
cached identity is of its own class, no bigger than another but by its
``grace_until``). ``note`` is a dict update, never a
store call; the new secret's requests never reach it. A background task
(``run``) writes what was counted ``FLUSH_DELAY`` after a use (later uses
join it) in one pipelined round trip (``store.graceuses.add``), and once
more at shutdown. A
batch that fails is kept and added to the next one.

A process keeps at most ``MAX_CLIENTS`` distinct clients per token between
two flushes (the others are counted under the store's other bucket) and cuts
a user agent at ``MAX_USER_AGENT`` characters, so a flood of made-up user
agents costs neither memory here nor space in the store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from sidecar.errors import StoreUnavailable
from sidecar.ops.cancellation import raise_if_cancelled
from sidecar.store import graceuses
from sidecar.store.base import StoreBase
from sidecar.store.graceuses import MAX_CLIENTS, Uses

log = logging.getLogger("keystile.graceuse")

#: Seconds between two writes of the counts (the record lags a use by about this).
FLUSH_PERIOD = 1.0
#: A use is written this soon after it (uses meanwhile join the same write): an
#: operator who looks right after a client used the old secret sees that use.
FLUSH_DELAY = 0.05
#: Characters of a user agent kept.
MAX_USER_AGENT = 200
#: The address and user agent under which a process counts clients beyond ``MAX_CLIENTS``
#: (no request has them: its address and user agent are strings, maybe empty).
OTHER = (None, None)

#: (client_id, grace_until, address, user agent): one client of one grace period.
Key = tuple[str, str, str | None, str | None]


class GraceUseRecorder:
    def __init__(self, store: StoreBase, wall_clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._wall_clock = wall_clock
        #: (client_id, grace_until, address, user agent) -> [uses, last use in ms].
        self._pending: dict[Key, list[int]] = {}
        #: client_id -> distinct clients in ``_pending``.
        self._clients: dict[str, int] = {}
        #: Set by a use, cleared by the flush that writes it.
        self._noted = asyncio.Event()

    def note(self, client_id: str, grace_until: str, address: str, user_agent: str) -> None:
        """Count one use of the old secret (of the grace period ending ``grace_until``)."""
        key = (client_id, grace_until, address, user_agent[:MAX_USER_AGENT])
        uses = self._pending.get(key) or self._new(key)
        uses[0] += 1
        uses[1] = int(self._wall_clock() * 1000)
        self._noted.set()

    def _new(self, key: Key) -> list[int]:
        client_id = key[0]
        if self._clients.get(client_id, 0) >= MAX_CLIENTS:
            key = (client_id, key[1], *OTHER)
            if key in self._pending:
                return self._pending[key]
        self._clients[client_id] = self._clients.get(client_id, 0) + 1
        uses = self._pending[key] = [0, 0]
        return uses

    async def flush(self) -> int:
        """Write the counts in one batch; answer how many clients were written."""
        pending, self._pending, self._clients = self._pending, {}, {}
        if not pending:
            return 0
        batch = {_stored(key): Uses(count, last) for key, (count, last) in pending.items()}
        try:
            await graceuses.add(self.store, batch)
        except StoreUnavailable as exc:
            self._keep(pending)
            raise_if_cancelled(exc)
            log.warning("old-secret uses not written", extra={"fields": {"reason": exc.reason}})
            return 0
        except BaseException:  # cancelled mid-write: the owner's last flush sends them
            self._keep(pending)
            raise
        return len(batch)

    def _keep(self, failed: dict[Key, list[int]]) -> None:
        """Fold a failed batch into what was counted meanwhile."""
        for key, (count, last) in failed.items():
            uses = self._pending.get(key) or self._new(key)
            uses[0] += count
            uses[1] = max(uses[1], last)

    async def run(self) -> None:
        """Flush ``FLUSH_DELAY`` after a use until cancelled (the owner flushes once more);
        after a failed write, retry no sooner than ``FLUSH_PERIOD``."""
        while True:
            raise_if_cancelled()
            await self._noted.wait()
            await asyncio.sleep(FLUSH_DELAY)
            self._noted.clear()
            await self.flush()
            if self._pending:  # the write failed and was kept
                await asyncio.sleep(FLUSH_PERIOD)
                self._noted.set()


def _stored(key: Key) -> graceuses.Client:
    """The key as the store counts it: the process's other bucket is the store's."""
    client_id, grace_until, address, user_agent = key
    if address is None or user_agent is None:
        return client_id, grace_until, graceuses.OTHER
    return client_id, grace_until, graceuses.pair(address, user_agent)
