"""Request validation for the admin API: decoded JSON bodies and query strings in,
checked values out (spec section 4).

Everything a request carries is checked here, before the store is touched, so
a request that fails changes nothing. Each problem is a ``BadRequest`` whose
``field`` is the dotted path of the offending value (``access.orders``,
``client_ids.3``). Unknown fields and read-only fields are refused rather than
ignored: a client that sends ``status`` or ``client_id`` expects it to mean
something, and silently dropping it would hide its mistake.

Pure module: no aiohttp, no redis.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from admin.authz import ADMIN_API
from admin.errors import BadRequest
from sidecar import clock
from sidecar.config import Config
from sidecar.policy import LEVELS, WILDCARD
from sidecar.records import ROLE_NAME, USERNAME

MAX_DESCRIPTION = 1000
MAX_DISPLAY_NAME = 200
MAX_EMAIL = 254
MAX_BULK = 1000

#: Fields a client may read but never write.
READ_ONLY = frozenset(
    {
        "client_id",
        "client_secret",
        "token",
        "status",
        "revoked",
        "created_at",
        "created_by",
        "last_used_at",
        "revoked_at",
        "revoked_by",
        "regenerated_at",
        "secret_hash",
        "previous_hash",
        "grace_until",
    }
)


@dataclass(frozen=True)
class Rules:
    """What validation needs from the config."""

    apis: tuple[str, ...]
    expiry_months_choices: tuple[int, ...] = (3, 6, 12)
    default_expiry_months: int = 6
    max_grace_seconds: int = 86400

    @classmethod
    def from_config(cls, config: Config) -> Rules:
        return cls(
            apis=tuple(api.name for api in config.apis),
            expiry_months_choices=config.tokens.expiry_months_choices,
            default_expiry_months=config.tokens.default_expiry_months,
            max_grace_seconds=config.tokens.max_grace_seconds,
        )

    @property
    def access_keys(self) -> frozenset[str]:
        return frozenset(self.apis) | {ADMIN_API, WILDCARD}


# -- bodies -------------------------------------------------------------------


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
    """``POST /tokens``: ``user`` is required, every other field has a default."""
    known(body, {"user", "description", "role", "access", "expires_in_months", "expires_at"})
    if "user" not in body:
        raise BadRequest("user is required", field="user")
    return NewToken(
        user=username(body["user"], "user"),
        description=text(body.get("description", ""), "description", MAX_DESCRIPTION),
        role=role_ref(body.get("role"), "role"),
        access=access_map(body.get("access", {}), rules, "access"),
        expires_at=expiry(body, rules, now),
    )


def new_own_token(body: Mapping[str, Any], rules: Rules, now: datetime, user: str) -> NewToken:
    """``POST /me/tokens``: as ``new_token``, for the caller's own user and without a role."""
    if "user" in body:
        raise BadRequest("a self-service token belongs to the caller's own user", field="user")
    if "role" in body:
        raise BadRequest("a self-service token cannot have a role", field="role")
    known(body, {"description", "access", "expires_in_months", "expires_at"})
    return new_token({**body, "user": user}, rules, now)


def token_changes(body: Mapping[str, Any], rules: Rules, now: datetime) -> dict[str, Any]:
    """``PATCH /tokens/{id}``: the fields to change, each checked; the rest stay."""
    known(body, {"user", "description", "role", "access", "expires_at"})
    changes: dict[str, Any] = {}
    if "user" in body:
        changes["user"] = username(body["user"], "user")
    if "description" in body:
        changes["description"] = text(body["description"], "description", MAX_DESCRIPTION)
    if "role" in body:
        changes["role"] = role_ref(body["role"], "role")
    if "access" in body:
        changes["access"] = access_map(body["access"], rules, "access")
    if "expires_at" in body:
        changes["expires_at"] = clock.to_rfc3339(moment(body["expires_at"], "expires_at", now))
    return changes


def regeneration(body: Mapping[str, Any], rules: Rules, now: datetime) -> Regeneration:
    """``POST /tokens/{id}/regenerate``: a new expiry counted from now, and a grace period."""
    known(body, {"expires_in_months", "expires_at", "grace_seconds"})
    bound = rules.max_grace_seconds
    message = f"grace_seconds must be an integer from 0 to {bound}"
    grace = whole_number(body.get("grace_seconds", 0), "grace_seconds", message)
    if not 0 <= grace <= bound:
        raise BadRequest(message, field="grace_seconds")
    return Regeneration(expiry(body, rules, now), grace)


#: The fields of a user a client may set, at creation and later (the username only at creation).
USER_PROFILE = frozenset({"display_name", "email", "active"})


def new_user(body: Mapping[str, Any]) -> dict[str, Any]:
    """``POST /users``: ``username`` is required; ``display_name``, ``email``, ``active``."""
    known(body, USER_PROFILE | {"username"})
    if "username" not in body:
        raise BadRequest("username is required", field="username")
    return {"username": username(body["username"], "username"), **_profile(body)}


def user_changes(body: Mapping[str, Any]) -> dict[str, Any]:
    """``PATCH /users/{name}``: ``display_name``, ``email``, ``active`` (the name stays)."""
    known(body, USER_PROFILE)
    return _profile(body)


def _profile(body: Mapping[str, Any]) -> dict[str, Any]:
    """Each profile field ``body`` holds, checked; a body already passed through ``known``."""
    changes: dict[str, Any] = {}
    if "display_name" in body:
        changes["display_name"] = text(body["display_name"], "display_name", MAX_DISPLAY_NAME)
    if "email" in body:
        changes["email"] = email(body["email"])
    if "active" in body:
        if not isinstance(body["active"], bool):
            raise BadRequest("active must be true or false", field="active")
        changes["active"] = body["active"]
    return changes


def role_body(name: str, body: Mapping[str, Any], rules: Rules) -> tuple[str, dict[str, str]]:
    """``PUT /roles/{name}``: the role's ``description`` and ``access``."""
    if not ROLE_NAME.fullmatch(name):
        raise BadRequest(f"a role name must match {ROLE_NAME.pattern}", field="name")
    known(body, {"description", "access"})
    description = text(body.get("description", ""), "description", MAX_DESCRIPTION)
    return description, access_map(body.get("access", {}), rules, "access")


def client_id_list(body: Mapping[str, Any]) -> list[str]:
    """``{"client_ids": [...]}``: 1 to 1000 ids, duplicates folded."""
    known(body, {"client_ids"})
    if "client_ids" not in body:
        raise BadRequest("client_ids is required", field="client_ids")
    return _ids(body["client_ids"])


def bulk_revoke_target(body: Mapping[str, Any]) -> list[str] | str:
    """``{"client_ids": [...]}`` or ``{"user": NAME}``, exactly one of the two."""
    known(body, {"client_ids", "user"})
    if ("client_ids" in body) == ("user" in body):
        raise BadRequest("give exactly one of client_ids and user", field="client_ids")
    if "user" in body:
        return username(body["user"], "user")
    return _ids(body["client_ids"])


def _ids(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise BadRequest("client_ids must be a list of client ids", field="client_ids")
    if not 1 <= len(value) <= MAX_BULK:
        raise BadRequest(f"client_ids must hold 1 to {MAX_BULK} ids", field="client_ids")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not 1 <= len(item) <= 64:
            raise BadRequest("a client id is a string", field=f"client_ids.{index}")
        unicode_text(item, f"client_ids.{index}")
    return list(dict.fromkeys(value))


# -- values -------------------------------------------------------------------


def known(body: Mapping[str, Any], allowed: AbstractSet[str]) -> None:
    for name in body:
        if name in allowed:
            continue
        if name in READ_ONLY:
            raise BadRequest(f"{name} is read-only", field=name)
        raise BadRequest(f"{name} is not a field of this request", field=_shown(name))


def _shown(name: str) -> str:
    # The field name comes from the request: keep what we echo short.
    return name if len(name) <= 64 else name[:64] + "..."


def text(value: Any, field: str, limit: int) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"{field} must be a string", field=field)
    if len(value) > limit:
        raise BadRequest(f"{field} must be at most {limit} characters", field=field)
    unicode_text(value, field)
    return value


def unicode_text(value: str, field: str) -> None:
    """Refuse a lone surrogate: JSON's ``\\ud800`` escape decodes to one, and no
    store or log can encode it as UTF-8 (RFC 8259 section 8.2 leaves it undefined)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"{field} must be valid Unicode text", field=field) from None


def whole_number(value: Any, field: str, message: str) -> int:
    """A JSON number with no fraction: ``6`` and ``6.0`` are both 6 (JSON has one number
    type, and JSON Schema's ``integer`` means the same); ``6.5``, ``true``, ``"6"``,
    and a number too large for a float (decoded as infinity) are refused."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise BadRequest(message, field=field)


def username(value: Any, field: str) -> str:
    if not isinstance(value, str) or not USERNAME.fullmatch(value):
        raise BadRequest(f"{field} must be a username matching {USERNAME.pattern}", field=field)
    return value


def email(value: Any) -> str:
    address = text(value, "email", MAX_EMAIL)
    local, at, domain = address.partition("@")
    if address and not (at and local and domain and " " not in address and "@" not in domain):
        raise BadRequest("email must be an address like name@example.org, or empty", field="email")
    return address


def role_ref(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not ROLE_NAME.fullmatch(value):
        raise BadRequest(f"{field} must be null or a role name", field=field)
    return value


def access_map(value: Any, rules: Rules, field: str) -> dict[str, str]:
    """An access map: configured API names, ``admin`` or ``*``, each to a level."""
    if not isinstance(value, dict):
        raise BadRequest(f"{field} must be an object of API names to levels", field=field)
    for api, level in value.items():
        where = f"{field}.{_shown(api)}"
        if api not in rules.access_keys:
            raise BadRequest(f"{_shown(api)!r} is not a configured API", field=where)
        if level not in LEVELS:
            raise BadRequest(f"a level is one of {', '.join(LEVELS)}", field=where)
    return dict(value)


def expiry(body: Mapping[str, Any], rules: Rules, now: datetime) -> datetime:
    """``expires_in_months`` (a configured choice, from now) or ``expires_at``, not both."""
    if "expires_in_months" in body and "expires_at" in body:
        raise BadRequest("give expires_in_months or expires_at, not both", field="expires_at")
    if "expires_at" in body:
        return moment(body["expires_at"], "expires_at", now)
    choices = ", ".join(str(m) for m in rules.expiry_months_choices)
    message = f"expires_in_months must be one of {choices}"
    raw = body.get("expires_in_months", rules.default_expiry_months)
    months = whole_number(raw, "expires_in_months", message)
    if months not in rules.expiry_months_choices:
        raise BadRequest(message, field="expires_in_months")
    return clock.add_months(now, months)


def moment(value: Any, field: str, now: datetime) -> datetime:
    """An RFC 3339 timestamp with a time zone, in the future."""
    if not isinstance(value, str) or len(value) > 64:
        raise BadRequest(f"{field} must be an RFC 3339 timestamp", field=field)
    try:
        parsed = clock.from_rfc3339(value)
    except ValueError:
        message = f"{field} must be an RFC 3339 timestamp with a time zone"
        raise BadRequest(message, field=field) from None
    except OverflowError:
        raise BadRequest(f"{field} is out of range", field=field) from None
    if parsed <= now:
        raise BadRequest(f"{field} must be in the future", field=field)
    try:
        return parsed.replace(microsecond=0) + timedelta(seconds=1 if parsed.microsecond else 0)
    except OverflowError:  # rounding 9999-12-31T23:59:59.5Z up to the next second
        raise BadRequest(f"{field} is out of range", field=field) from None
