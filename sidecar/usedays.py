"""The words of counted uses, shared by the counter, the store and the advice: pure module.

A use is filed under ``UseKey`` ``(client_id, api, safe)``, and stored per
UTC day in a field ``<yyyy-mm-dd>|<api>|safe`` (or ``unsafe``) of the
token's uses hash (sidecar/store/uses.py); ``DayUses`` is one day of one API
as read back. Days are ISO dates, so they sort as text and a window is a
string comparison. No aiohttp, no redis.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

#: ``(client_id, api, safe)``: what one counted use is filed under.
UseKey = tuple[str, str, bool]
SEP = "|"
SAFE, UNSAFE = "safe", "unsafe"


@dataclass(frozen=True, slots=True)
class DayUses:
    """The uses of one token on one API on one UTC day."""

    day: str
    api: str
    safe: int
    unsafe: int


def first_day(today: date, days: int) -> str:
    """The first day (``yyyy-mm-dd``) of ``days`` UTC days ending with ``today``."""
    return (today - timedelta(days=days - 1)).isoformat()


def field(day: str, api: str, safe: bool) -> str:
    return SEP.join((day, api, SAFE if safe else UNSAFE))


def parse_fields(raw: dict[str, str], since: str) -> list[DayUses]:
    """The days from ``since`` on of a uses hash, oldest first, API by API."""
    days: dict[tuple[str, str], list[int]] = {}
    for name, value in raw.items():
        day, api, kind = [*name.split(SEP), "", ""][:3]
        if day < since or kind not in (SAFE, UNSAFE) or not value.isdigit():
            continue  # an old day not trimmed yet, or a field of another version
        counts = days.setdefault((day, api), [0, 0])
        counts[1 if kind == UNSAFE else 0] += int(value)
    return [DayUses(day, api, safe, unsafe) for (day, api), (safe, unsafe) in sorted(days.items())]
