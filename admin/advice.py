"""Least privilege from observed use: a token's uses per API, and the access they needed.

``usage_view`` sums the counted days of a window (sidecar/store/uses.py) per
API; ``advise`` proposes the tightest access map that would have allowed
every use in it, API by API: an unsafe use needs ``full``, safe uses only
need ``read``, no use needs ``none``. It never proposes more than the token
has now (least privilege only tightens), and it leaves the ``admin`` level
as it is: admin calls are not counted, and advice that locked an operator
out of the admin API could only be undone with ``keystile bootstrap``.

A role stays on the token: the token's own entries come first (spec section
1), so the proposal writes an entry wherever the role would grant another
level than the uses need, and ``"*": "none"`` when the role's ``"*"`` would
open APIs configured later. docs/least-privilege.md has the reasoning.
Pure module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from admin.authz import ADMIN_API
from sidecar.policy import WILDCARD, AccessMap, Level, effective_level, level_rank
from sidecar.usedays import DayUses

#: The window when the query names none (at most ``tokens.usage_days``).
DEFAULT_DAYS = 30


@dataclass(frozen=True)
class ApiUses:
    api: str
    safe: int = 0
    unsafe: int = 0
    last_day: str | None = None

    def json(self) -> dict[str, Any]:
        return {
            "api": self.api,
            "safe": self.safe,
            "unsafe": self.unsafe,
            "last_day": self.last_day,
        }


@dataclass(frozen=True)
class Advice:
    """The token's own access map now, the one proposed, and what changes per API."""

    current: dict[str, str]
    proposed: dict[str, str]
    changes: dict[str, list[str]]
    notes: list[str] = field(default_factory=list)


def per_api(days: Sequence[DayUses], apis: Sequence[str]) -> list[ApiUses]:
    """The window's uses per API: every configured API (in config order), then any other seen."""
    totals = {api: ApiUses(api) for api in apis}
    for day in days:
        old = totals.get(day.api, ApiUses(day.api))
        last = max(old.last_day or "", day.day)
        totals[day.api] = ApiUses(day.api, old.safe + day.safe, old.unsafe + day.unsafe, last)
    others = sorted(name for name in totals if name not in apis)
    return [totals[api] for api in (*apis, *others)]


def needed(uses: ApiUses) -> Level:
    """The least level that allows every use counted."""
    if uses.unsafe:
        return Level.FULL
    return Level.READ if uses.safe else Level.NONE


def advise(
    access: AccessMap,
    role: str | None,
    role_access: AccessMap | None,
    apis: Sequence[str],
    uses: Sequence[ApiUses],
) -> Advice:
    """The tightest access map that allows every use in ``uses`` on the configured ``apis``."""
    role_map = role_access or {}
    used = {use.api: needed(use) for use in uses}
    wanted = {
        api: _at_most(used.get(api, Level.NONE), effective_level(api, access, role_map))
        for api in apis
    }
    wanted[ADMIN_API] = effective_level(ADMIN_API, access, role_map)
    # A role's "*" would open every API configured later: close it in the token's own map.
    close_rest = effective_level(WILDCARD, {}, role_map) is not Level.NONE
    proposed = {}
    for api, level in wanted.items():
        fallback = Level.NONE if close_rest else effective_level(api, {}, role_map)
        if level is not fallback:
            proposed[api] = level.value
    if close_rest:
        proposed[WILDCARD] = Level.NONE.value
    changes = {
        api: [now.value, level.value]
        for api, level in wanted.items()
        if (now := effective_level(api, access, role_map)) is not level
    }
    return Advice(dict(access), proposed, changes, _notes(role, close_rest))


def _at_most(level: Level, current: Level) -> Level:
    return level if level_rank(level) <= level_rank(current) else current


def _notes(role: str | None, close_rest: bool) -> list[str]:
    notes = ["admin calls are not counted: the level on admin stays as it is"]
    if role:
        notes.append(
            f"the role {role!r} stays: the token's own entries override it, so the proposal"
            " names each API where the role grants more than the uses needed"
        )
    if close_rest:
        notes.append(
            f"'*': 'none' keeps APIs configured later closed, which the role {role!r} would open"
        )
    return notes


def usage_view(
    client_id: str,
    window: int,
    since: str,
    today: str,
    days: Sequence[DayUses],
    apis: Sequence[str],
) -> dict[str, Any]:
    """``GET /tokens/{id}/usage``: the window's totals per API, and its days."""
    return {
        "client_id": client_id,
        "window_days": window,
        "since": since,
        "until": today,
        "items": [uses.json() for uses in per_api(days, apis)],
        "days": [{"day": d.day, "api": d.api, "safe": d.safe, "unsafe": d.unsafe} for d in days],
    }


def advice_view(
    client_id: str,
    window: int,
    since: str,
    role: str | None,
    advice: Advice,
    uses: Sequence[ApiUses],
) -> dict[str, Any]:
    """``GET /tokens/{id}/advice``: the proposal, what it changes, and the uses behind it."""
    return {
        "client_id": client_id,
        "window_days": window,
        "since": since,
        "role": role,
        "current": advice.current,
        "proposed": advice.proposed,
        "changes": advice.changes,
        "uses": {u.api: {"safe": u.safe, "unsafe": u.unsafe} for u in uses},
        "notes": advice.notes,
    }
