"""Time as the product writes it: RFC 3339 UTC strings, and month arithmetic.

Pure module.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def to_rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def from_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 timestamp; a value without a time zone is a ValueError."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("timestamp has no time zone")
    return moment.astimezone(UTC)


def add_months(moment: datetime, months: int) -> datetime:
    """Same day of month ``months`` later, clamped to the month's last day."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)
