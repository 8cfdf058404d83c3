"""The checks of single values in admin request bodies, and the config they depend on.

Each check takes the decoded JSON value and the dotted name of its field, and
returns the value to store or raises ``BadRequest`` naming that field
(``access.orders``, ``client_ids.3``). ``admin.fields`` pairs each check with
the JSON Schema that documents it. Pure module: no aiohttp, no redis.
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

MAX_BULK = 1000
MAX_EMAIL = 254

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
    """What validation (and the document describing it) needs from the config."""

    apis: tuple[str, ...]
    expiry_months_choices: tuple[int, ...] = (3, 6, 12)
    default_expiry_months: int = 6
    max_grace_seconds: int = 86400
    #: ``tokens.usage_days``: the longest window of /usage and /advice.
    usage_days: int = 90

    @classmethod
    def from_config(cls, config: Config) -> Rules:
        return cls(
            apis=tuple(api.name for api in config.apis),
            expiry_months_choices=config.tokens.expiry_months_choices,
            default_expiry_months=config.tokens.default_expiry_months,
            max_grace_seconds=config.tokens.max_grace_seconds,
            usage_days=config.tokens.usage_days,
        )

    @property
    def access_keys(self) -> frozenset[str]:
        return frozenset(self.apis) | {ADMIN_API, WILDCARD}


def known(body: Mapping[str, Any], allowed: AbstractSet[str]) -> None:
    for name in body:
        if name in allowed:
            continue
        if name in READ_ONLY:
            raise BadRequest(f"{name} is read-only", field=name)
        raise BadRequest(f"{name} is not a field of this request", field=shown(name))


def shown(name: str) -> str:
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
        where = f"{field}.{shown(api)}"
        if api not in rules.access_keys:
            raise BadRequest(f"{shown(api)!r} is not a configured API", field=where)
        if level not in LEVELS:
            raise BadRequest(f"a level is one of {', '.join(LEVELS)}", field=where)
    return dict(value)


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


def months(value: Any, field: str, rules: Rules) -> int:
    """A number of months among the configured choices."""
    choices = ", ".join(str(m) for m in rules.expiry_months_choices)
    message = f"{field} must be one of {choices}"
    count = whole_number(value, field, message)
    if count not in rules.expiry_months_choices:
        raise BadRequest(message, field=field)
    return count


def grace(value: Any, field: str, rules: Rules) -> int:
    """Seconds the old secret keeps working: from 0 to ``tokens.max_grace_seconds``."""
    bound = rules.max_grace_seconds
    message = f"{field} must be an integer from 0 to {bound}"
    seconds = whole_number(value, field, message)
    if not 0 <= seconds <= bound:
        raise BadRequest(message, field=field)
    return seconds


def client_ids(value: Any, field: str) -> list[str]:
    """1 to ``MAX_BULK`` client ids, duplicates folded."""
    if not isinstance(value, list):
        raise BadRequest(f"{field} must be a list of client ids", field=field)
    if not 1 <= len(value) <= MAX_BULK:
        raise BadRequest(f"{field} must hold 1 to {MAX_BULK} ids", field=field)
    for index, item in enumerate(value):
        if not isinstance(item, str) or not 1 <= len(item) <= 64:
            raise BadRequest("a client id is a string", field=f"{field}.{index}")
        unicode_text(item, f"{field}.{index}")
    return list(dict.fromkeys(value))


def active(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise BadRequest(f"{field} must be true or false", field=field)
    return value
