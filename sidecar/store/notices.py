"""The notices a change leaves for the ``[[notify]]`` webhooks (spec section 10).

A notice is queued on ``keys.NOTICES`` in the same transaction as the change
that causes it, so it exists exactly when the change does; the notifier
delivers it later, outside any request. Fields are flat strings (a Redis
stream entry): ``kind`` (``token.expiring`` or ``token.leaked``),
``client_id``, ``user``, ``at`` (RFC 3339), plus what the kind adds
(``days_before`` and ``expires_at``; ``action``, and ``url`` when the leak
report said where the token was found). Never a secret or a hash.

A ``token.expiring`` notice goes with its once-only marker
(``keys.expiry_notice``: token, threshold, expiry), set NX in one script with
the notice: the expiry scan (sidecar/notify/expiry.py) and a token write whose
expiry is already inside a threshold (``queue_if_due``, sidecar/store/tokens.py)
take this one path, so whichever comes first queues it and the other nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from redis.asyncio.client import Pipeline

from sidecar import clock
from sidecar.records import Token
from sidecar.store import keys

EXPIRING = "token.expiring"
LEAKED = "token.leaked"
DAY = 86400

# KEYS: the marker, the stream; ARGV: the marker's end (unix ms), then the entry's
# fields and values. The notice is added only by the call that set the marker.
_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'PXAT', ARGV[1]) then
  redis.call('XADD', KEYS[2], '*', unpack(ARGV, 2))
  return 1
end
return 0
"""


def queue(pipe: Pipeline, kind: str, client_id: str, user: str, **fields: str) -> None:
    """Queue one notice on ``pipe`` (inside the transaction that causes it)."""
    pipe.xadd(keys.NOTICES, _entry(kind, client_id, user, fields))


def _entry(kind: str, client_id: str, user: str, fields: dict[str, str]) -> dict[Any, Any]:
    entry: dict[Any, Any] = {"kind": kind, "client_id": client_id, "user": user}
    entry["at"] = clock.to_rfc3339(clock.now())
    entry.update(fields)
    return entry


def tightest(expires_at: str, thresholds: Sequence[int], now: datetime) -> int | None:
    """The smallest threshold (days) ``expires_at`` is inside of; None if none or expired."""
    left = (clock.from_rfc3339(expires_at) - now).total_seconds()
    inside = [days for days in thresholds if 0 < left <= days * DAY]
    return min(inside) if inside else None


def queue_expiring(pipe: Pipeline, client_id: str, user: str, expires_at: str, days: int) -> None:
    """Queue the ``days`` notice of ``client_id`` expiring at ``expires_at``, unless its
    marker says it was queued before (the marker lives until a day after that expiry)."""
    expires_s = int(clock.from_rfc3339(expires_at).timestamp())
    marker = keys.expiry_notice(client_id, days, expires_s)
    fields = {"days_before": str(days), "expires_at": expires_at}
    flat = [part for pair in _entry(EXPIRING, client_id, user, fields).items() for part in pair]
    pipe.eval(_ONCE, 2, marker, keys.NOTICES, (expires_s + DAY) * 1000, *flat)


def queue_if_due(pipe: Pipeline, token: Token, thresholds: Sequence[int]) -> None:
    """In the transaction writing ``token``: its notice now if its expiry is inside a threshold
    (no thresholds: no ``[[notify]]`` wants expiry notices, and nothing is queued)."""
    if not thresholds or token.revoked:
        return
    try:
        days = tightest(token.expires_at, thresholds, clock.now())
    except ValueError:
        return  # not a time: `keystile store check` reports it, the scan skips it
    if days:
        queue_expiring(pipe, token.client_id, token.user, token.expires_at, days)
