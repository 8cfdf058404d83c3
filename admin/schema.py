"""Request validation for the admin API: decoded JSON bodies in, checked values out
(spec section 4).

Each body is declared once, below, as a table of fields (``admin.fields.Body``):
the same table checks a request and describes it in the OpenAPI document
(``admin.openapi`` reads ``BODIES``). Everything a request carries is checked
here, before the store is touched, so a request that fails changes nothing.
Unknown fields and read-only fields are refused rather than ignored: a client
that sends ``status`` or ``client_id`` expects it to mean something, and
silently dropping it would hide its mistake.

Pure module: no aiohttp, no redis.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from admin.errors import BadRequest
from admin.fields import (
    ACCESS,
    BOOLEAN,
    CLIENT_IDS,
    EMAIL,
    GRACE,
    MOMENT,
    MONTHS,
    ROLE_REF,
    USERNAME_KIND,
    Body,
    Context,
    Field,
    Kind,
    bounded_text,
)
from admin.values import (
    MAX_BULK,
    MAX_EMAIL,
    READ_ONLY,
    Rules,
    access_map,
    known,
    months,
    whole_number,
)
from sidecar import clock
from sidecar.records import ROLE_NAME

__all__ = ["MAX_BULK", "MAX_EMAIL", "READ_ONLY", "Rules", "access_map", "known"]

MAX_DESCRIPTION = 1000
MAX_DISPLAY_NAME = 200

# -- the fields ---------------------------------------------------------------

_OWNER = "the user the token belongs to"
_DESCRIPTION = Field(bounded_text(MAX_DESCRIPTION), "free text: what it is for")
_ROLE = Field(ROLE_REF, "a role whose access the token also gets, or null for none")
_ACCESS = Field(ACCESS, "the levels it grants, per API")
_MONTHS = Field(MONTHS, "months from now until it expires (default: tokens.default_expiry_months)")
_EXPIRES_AT = Field(MOMENT, "when it expires, in the future")
_UNTIL = Field(
    MOMENT,
    "when it expires, in the future; not with expires_in_months",
    excludes="expires_in_months",
)
_PROFILE = {
    "display_name": Field(bounded_text(MAX_DISPLAY_NAME), "the name people see"),
    "email": Field(EMAIL, "an address like name@example.org, or empty"),
    "active": Field(BOOLEAN, "false: every token of this user is refused"),
}
_IDS = Field(CLIENT_IDS, f"1 to {MAX_BULK} client ids", required=True)

# -- the bodies ---------------------------------------------------------------

#: ``POST /tokens``: ``user`` is required, every other field has a default.
TOKEN_CREATE = Body(
    {
        "user": Field(USERNAME_KIND, _OWNER, required=True),
        "description": _DESCRIPTION,
        "role": _ROLE,
        "access": _ACCESS,
        "expires_at": _UNTIL,
        "expires_in_months": _MONTHS,
    }
)
#: ``POST /me/tokens``: for the caller's own user, without a role.
OWN_TOKEN_CREATE = Body(
    {
        name: TOKEN_CREATE.fields[name]
        for name in ("description", "access", "expires_at", "expires_in_months")
    }
)
#: ``PATCH /tokens/{id}``: the fields to change; the rest stay.
TOKEN_PATCH = Body(
    {
        "user": Field(USERNAME_KIND, _OWNER),
        "description": _DESCRIPTION,
        "role": _ROLE,
        "access": _ACCESS,
        "expires_at": _EXPIRES_AT,
    }
)
#: ``POST /tokens/{id}/regenerate``: a new expiry counted from now, and a grace period.
REGENERATE = Body(
    {
        "grace_seconds": Field(GRACE, "seconds the old secret keeps working (default 0)"),
        "expires_at": _UNTIL,
        "expires_in_months": _MONTHS,
    }
)
#: ``POST /users``: the username (only at creation) and the profile.
USER_CREATE = Body(
    {"username": Field(USERNAME_KIND, "case-insensitive, unique", required=True), **_PROFILE}
)
USER_PATCH = Body(_PROFILE)
#: ``PUT /roles/{name}``: the role's ``description`` and ``access``.
ROLE_PUT = Body({"description": _DESCRIPTION, "access": _ACCESS})
BULK_IDS = Body({"client_ids": _IDS})
#: ``{"client_ids": [...]}`` or ``{"user": NAME}``, exactly one of the two.
BULK_REVOKE = Body(
    {"client_ids": _IDS, "user": Field(USERNAME_KIND, "every token of this user", required=True)},
    choice=True,
)
#: A body that may hold nothing (``POST .../revoke``).
EMPTY = Body({})

# -- least privilege from observed use (admin/advice.py) ----------------------

#: A window of 1 to ``tokens.usage_days`` UTC days ending today.
USAGE_WINDOW = Kind(
    lambda value, field, context: window_days(value, field, context.rules),
    lambda rules: {"type": "integer", "minimum": 1, "maximum": rules.usage_days},
)
#: ``POST /tokens/{id}/advice/apply``: the window, and the proposal the operator saw.
ADVICE_APPLY = Body(
    {
        "days": Field(USAGE_WINDOW, "the window of the advice, in days (default 30)"),
        "expected": Field(
            ACCESS, "the proposed map as shown; a different proposal now is a 409, nothing changed"
        ),
    }
)


def window_days(value: Any, field: str, rules: Rules) -> int:
    message = f"{field} must be an integer from 1 to {rules.usage_days}"
    days = whole_number(value, field, message)
    if not 1 <= days <= rules.usage_days:
        raise BadRequest(message, field=field)
    return days


def advice_apply(body: Mapping[str, Any], rules: Rules) -> tuple[int | None, dict[str, str] | None]:
    """The apply body's ``days`` and ``expected`` (None where not given)."""
    checked = ADVICE_APPLY.check(body, Context(rules, datetime.min))
    return checked.get("days"), checked.get("expected")


#: Every body, by the name of its schema in the OpenAPI document.
BODIES = {
    "TokenCreate": TOKEN_CREATE,
    "OwnTokenCreate": OWN_TOKEN_CREATE,
    "TokenPatch": TOKEN_PATCH,
    "Regenerate": REGENERATE,
    "Empty": EMPTY,
    "BulkIds": BULK_IDS,
    "BulkRevoke": BULK_REVOKE,
    "UserCreate": USER_CREATE,
    "UserPatch": USER_PATCH,
    "RolePut": ROLE_PUT,
    "AdviceApply": ADVICE_APPLY,
}

# -- what the views get -------------------------------------------------------


@dataclass(frozen=True)
class NewToken:
    user: str
    description: str
    role: str | None
    access: dict[str, str]
    expires_at: datetime


@dataclass(frozen=True)
class Regeneration:
    expires_at: datetime
    grace_seconds: int


def new_token(body: Mapping[str, Any], rules: Rules, now: datetime) -> NewToken:
    checked = TOKEN_CREATE.check(body, Context(rules, now))
    return NewToken(
        user=checked["user"],
        description=checked.get("description", ""),
        role=checked.get("role"),
        access=checked.get("access", {}),
        expires_at=_expiry(checked, rules, now),
    )


def new_own_token(body: Mapping[str, Any], rules: Rules, now: datetime, user: str) -> NewToken:
    """As ``new_token``, for the caller's own user and without a role."""
    if "user" in body:
        raise BadRequest("a self-service token belongs to the caller's own user", field="user")
    if "role" in body:
        raise BadRequest("a self-service token cannot have a role", field="role")
    known(body, OWN_TOKEN_CREATE.fields.keys())
    return new_token({**body, "user": user}, rules, now)


def token_changes(body: Mapping[str, Any], rules: Rules, now: datetime) -> dict[str, Any]:
    changes = TOKEN_PATCH.check(body, Context(rules, now))
    if "expires_at" in changes:
        changes["expires_at"] = clock.to_rfc3339(changes["expires_at"])
    return changes


def regeneration(body: Mapping[str, Any], rules: Rules, now: datetime) -> Regeneration:
    checked = REGENERATE.check(body, Context(rules, now))
    return Regeneration(_expiry(checked, rules, now), checked.get("grace_seconds", 0))


def _expiry(checked: Mapping[str, Any], rules: Rules, now: datetime) -> datetime:
    """``expires_at`` as given, or ``expires_in_months`` (a configured choice) from now."""
    if "expires_at" in checked:
        expires_at: datetime = checked["expires_at"]
        return expires_at
    count = checked.get("expires_in_months")
    if count is None:  # the default is a choice too (config.py checks it at start)
        count = months(rules.default_expiry_months, "expires_in_months", rules)
    return clock.add_months(now, count)


def new_user(body: Mapping[str, Any]) -> dict[str, Any]:
    return USER_CREATE.check(body)


def user_changes(body: Mapping[str, Any]) -> dict[str, Any]:
    return USER_PATCH.check(body)


def role_body(name: str, body: Mapping[str, Any], rules: Rules) -> tuple[str, dict[str, str]]:
    """The role's ``description`` and ``access``, once its ``name`` (from the path) is checked."""
    if not ROLE_NAME.fullmatch(name):
        raise BadRequest(f"a role name must match {ROLE_NAME.pattern}", field="name")
    checked = ROLE_PUT.check(body, Context(rules, datetime.min))
    return checked.get("description", ""), checked.get("access", {})


def client_id_list(body: Mapping[str, Any]) -> list[str]:
    ids: list[str] = BULK_IDS.check(body)["client_ids"]
    return ids


def bulk_revoke_target(body: Mapping[str, Any]) -> list[str] | str:
    checked = BULK_REVOKE.check(body)
    target: list[str] | str = checked["user"] if "user" in checked else checked["client_ids"]
    return target
