"""The notices a change leaves for the ``[[notify]]`` webhooks (spec section 10).

A notice is queued on ``keys.NOTICES`` in the same transaction as the change
that causes it, so it exists exactly when the change does; the notifier
delivers it later, outside any request. Fields are flat strings (a Redis
stream entry): ``kind`` (``token.expiring`` or ``token.leaked``),
``client_id``, ``user``, ``at`` (RFC 3339), plus what the kind adds
(``days_before`` and ``expires_at``; ``action``, and ``url`` when the leak
report said where the token was found). Never a secret or a hash.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio.client import Pipeline

from sidecar import clock
from sidecar.store import keys

EXPIRING = "token.expiring"
LEAKED = "token.leaked"


def queue(pipe: Pipeline, kind: str, client_id: str, user: str, **fields: str) -> None:
    """Queue one notice on ``pipe`` (inside the transaction that causes it)."""
    entry: dict[Any, Any] = {"kind": kind, "client_id": client_id, "user": user}
    entry["at"] = clock.to_rfc3339(clock.now())
    entry.update(fields)
    pipe.xadd(keys.NOTICES, entry)
