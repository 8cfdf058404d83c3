"""Least privilege from observed use: a token's uses per API, and the access they needed.

``usage_view`` sums the counted days of a window (sidecar/store/uses.py) per
API; ``advise`` proposes the tightest access map that would have allowed
every use in it, API by API: an unsafe use needs ``full``, safe uses only
need ``read``, no use needs ``none``. It never proposes more than the token
has now (least privilege only tightens). The proposal names every API
explicitly: each configured one, ``admin`` (whose calls are counted like any
API's, admin/views_shared.py) and any other key of the token's map, with
``"*": "none"`` when a ``"*"`` (the token's or its role's) would open APIs
configured later; so ``proposed[api]`` is always there to read.

A role stays on the token: the token's own entries come first (spec section
1), so explicit entries decide every API whatever the role grants.
docs/least-privilege.md has the reasoning.
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
    #: Applying would change no effective level, nor that of APIs configured later.
    unchanged: bool = False


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
    """The tightest access map that allows every use in ``uses``, every API named in it."""
    role_map = role_access or {}
    used = {use.api: needed(use) for use in uses}
    wanted = {
        api: _at_most(used.get(api, Level.NONE), effective_level(api, access, role_map))
        for api in targets(access, apis)
    }
    proposed = {api: level.value for api, level in wanted.items()}
    # A "*" (the token's, or the role's) would open every API configured later: close it.
    role_opens = effective_level(WILDCARD, {}, role_map) is not Level.NONE
    close_rest = WILDCARD in access or role_opens
    if close_rest:
        proposed[WILDCARD] = Level.NONE.value
    changes = {
        api: [now.value, level.value]
        for api, level in wanted.items()
        if (now := effective_level(api, access, role_map)) is not level
    }
    # effective_level on "*" is the level of an API no map names (one configured later).
    later = effective_level(WILDCARD, proposed, role_map)
    unchanged = not changes and later is effective_level(WILDCARD, access, role_map)
    return Advice(dict(access), proposed, changes, _notes(role, role_opens), unchanged)


def targets(access: AccessMap, apis: Sequence[str]) -> tuple[str, ...]:
    """The APIs a proposal names: the configured ones, ``admin``, then any other in ``access``."""
    named = (*apis, ADMIN_API)
    return (*named, *sorted(k for k in access if k not in named and k != WILDCARD))


def _at_most(level: Level, current: Level) -> Level:
    return level if level_rank(level) <= level_rank(current) else current


def _notes(role: str | None, role_opens: bool) -> list[str]:
    if not role:
        return []
    notes = [
        f"the role {role!r} stays: the token's own entries come first, so the proposal"
        " names every API and the role no longer decides any of them for this token"
    ]
    if role_opens:
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
