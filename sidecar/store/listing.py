"""The listing part of the admin store: the bulk reads behind the admin's pages.

The token index (``admin/tokenindex.py``) is filled from ``token_id_batches``
and ``token_rows`` and kept current from ``change_marks``; history and audit
pages read the change log ``base.StoreBase.record`` writes. None of these
reads changes anything.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sidecar.store import keys
from sidecar.store.base import StoreBase
from sidecar.store.changes import Missing

#: Token fields the index of the admin listing keeps (everything but hashes).
ROW_FIELDS = (
    "client_id",
    "user",
    "description",
    "role",
    "access",
    "revoked",
    "created_at",
    "expires_at",
    "last_used_at",
)
#: Tokens read per Lua call: large enough to amortise the round trip, small
#: enough that the script holds Redis, and decoding holds the caller, for a few ms.
ROWS_PER_CALL = 2000


class ListingStore(StoreBase):
    async def token_id_batches(self, count: int = ROWS_PER_CALL) -> AsyncIterator[list[str]]:
        """Every token's client_id, in batches of about ``count``, in no order (ZSCAN).

        A batch may repeat an id. Every token present from the first batch to
        the last is in one; a token created or deleted meanwhile may or may not
        be. Each batch is one round trip, so a caller can let other work run
        between them rather than decode a million ids at once.
        """
        cursor = 0
        while True:
            async with self.guard():
                cursor, pairs = await self.redis.zscan(keys.TOKENS, cursor, count=count)
            yield [str(member) for member, _ in pairs]
            if cursor == 0:
                return

    async def token_rows(self, client_ids: Sequence[str]) -> list[dict[str, str] | None]:
        """The listing fields (no hash) of many tokens, in order; None where one is gone."""
        return [
            None if row[0] is None else dict(zip(ROW_FIELDS, row, strict=True))
            for row in await self._token_fields(client_ids, ROW_FIELDS)
        ]

    async def last_used(self, client_ids: Sequence[str]) -> list[str | None]:
        """``last_used_at`` of many tokens, in order."""
        return [row[0] or None for row in await self._token_fields(client_ids, ("last_used_at",))]

    async def _token_fields(
        self, client_ids: Sequence[str], fields: Sequence[str]
    ) -> list[list[Any]]:
        """``fields`` of many tokens (str, or None where unset), in order, one Lua call
        per ``ROWS_PER_CALL`` tokens.

        A pipeline of 100,000 HMGETs spends seconds in redis-py packing and
        unpacking commands, the script a fraction.
        """
        rows: list[list[Any]] = []
        for start in range(0, len(client_ids), ROWS_PER_CALL):
            chunk = [keys.token(c) for c in client_ids[start : start + ROWS_PER_CALL]]
            async with self.guard():
                values: Any = await self.redis.eval(_ROWS_SCRIPT, len(chunk), *chunk, *fields)
            rows.extend(values)
        return rows

    async def change_marks(self, after: str) -> tuple[int, str, list[tuple[str, str]] | None]:
        """The generation, the newest audit id, and ``(kind, target)`` of entries after ``after``.

        The marks are None when the entry ``after`` is no longer in the stream
        (another or an emptied Redis): the reader cannot catch up, only start over.
        """
        async with self.guard(), self.redis.pipeline(transaction=True) as pipe:
            pipe.get(keys.GENERATION)
            pipe.xrange(keys.AUDIT, min=after, max=after, count=1)
            pipe.xrange(keys.AUDIT, min=f"({after}" if after != "0-0" else "-", max="+")
            generation, anchor, entries = await pipe.execute()
        if after != "0-0" and not anchor:
            return int(generation or 0), after, None
        marks = []
        newest = after
        for entry_id, fields in entries:
            newest = entry_id
            entry = json.loads(fields["entry"])
            marks.append((entry.get("kind", ""), entry.get("target", "")))
        return int(generation or 0), newest, marks

    async def audit_position(self) -> tuple[int, str]:
        """The generation and the id of the newest audit entry, read together."""
        async with self.guard(), self.redis.pipeline(transaction=True) as pipe:
            pipe.get(keys.GENERATION)
            pipe.xrevrange(keys.AUDIT, max="+", min="-", count=1)
            generation, newest = await pipe.execute()
        return int(generation or 0), newest[0][0] if newest else "0-0"

    async def history(self, client_id: str) -> list[dict[str, Any]]:
        """Every recorded change of a token ever issued, oldest first (kept after deletion)."""
        async with self.guard(), self.redis.pipeline(transaction=False) as pipe:
            pipe.sismember(keys.ISSUED_IDS, client_id)
            pipe.lrange(keys.token_history(client_id), 0, -1)
            issued, raw = await pipe.execute()
        if not issued:
            raise Missing(client_id)
        return [json.loads(entry) for entry in raw]

    async def audit(self, since_ms: int | None, limit: int) -> list[dict[str, Any]]:
        """The global change log, newest first, entries at or after ``since_ms``."""
        low = f"{since_ms}-0" if since_ms is not None else "-"
        async with self.guard():
            raw: Any = await self.redis.xrevrange(keys.AUDIT, max="+", min=low, count=limit)
        return [json.loads(fields["entry"]) for _, fields in raw]


# HMGET of the listing fields of every key given; all keys share the {ks} hash tag.
_ROWS_SCRIPT = """
local rows = {}
for i, key in ipairs(KEYS) do
  rows[i] = redis.call('HMGET', key, unpack(ARGV))
end
return rows
"""
