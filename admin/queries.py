"""Query strings of the admin lists: search, filters, order and pages (spec section 4).

``order`` is a comma list of columns, ``-`` before one for descending
(``order=user,-created_at``); an unknown column is a 400 naming ``order``.
Unknown query parameters are ignored, as most HTTP APIs do. Pure module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from admin.errors import BadRequest
from sidecar import clock
from sidecar.records import TOKEN_STATUSES

TOKEN_COLUMNS = (
    "client_id",
    "user",
    "description",
    "role",
    "status",
    "created_at",
    "expires_at",
    "last_used_at",
)
USER_COLUMNS = ("username", "display_name", "email", "active", "created_at")
MAX_LIMIT = 1000

#: One sort key: the column, and whether it runs descending.
OrderKey = tuple[str, bool]


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int


@dataclass(frozen=True)
class TokenQuery:
    q: str = ""
    user: str | None = None
    #: The statuses listed (None: all), e.g. active and expired to hide revoked tokens.
    status: frozenset[str] | None = None
    role: str | None = None
    api: str | None = None
    order: tuple[OrderKey, ...] = (("created_at", True),)
    page: Page = Page(50, 0)


@dataclass(frozen=True)
class UserQuery:
    q: str = ""
    order: tuple[OrderKey, ...] = (("username", False),)
    page: Page = Page(50, 0)


@dataclass(frozen=True)
class AuditQuery:
    since_ms: int | None = None
    limit: int = 100


def token_query(params: Mapping[str, str], apis: frozenset[str]) -> TokenQuery:
    status = _statuses(params.get("status"))
    api = params.get("api")
    if api is not None and api not in apis:
        raise BadRequest("api must be the name of a configured API or admin", field="api")
    return TokenQuery(
        q=_search(params),
        user=params.get("user"),
        status=status,
        role=params.get("role"),
        api=api,
        order=order(params.get("order"), TOKEN_COLUMNS, TokenQuery.order),
        page=page(params, default_limit=50),
    )


def _statuses(value: str | None) -> frozenset[str] | None:
    """``status=revoked`` or a comma list such as ``status=active,expired``."""
    if value is None:
        return None
    statuses = frozenset(item.strip() for item in value.split(","))
    if not statuses <= set(TOKEN_STATUSES):
        message = f"status must be one of {', '.join(TOKEN_STATUSES)}, or a comma list of them"
        raise BadRequest(message, field="status")
    return statuses


def user_query(params: Mapping[str, str]) -> UserQuery:
    return UserQuery(
        q=_search(params),
        order=order(params.get("order"), USER_COLUMNS, UserQuery.order),
        page=page(params, default_limit=50),
    )


def audit_query(params: Mapping[str, str]) -> AuditQuery:
    since = params.get("since")
    since_ms = None
    if since is not None:
        try:
            since_ms = int(clock.from_rfc3339(since).timestamp() * 1000)
        except (ValueError, OverflowError):
            message = "since must be an RFC 3339 timestamp with a time zone"
            raise BadRequest(message, field="since") from None
    return AuditQuery(since_ms=max(since_ms, 0) if since_ms is not None else None,
                      limit=_bounded(params, "limit", 100, 1, MAX_LIMIT))  # fmt: skip


def _search(params: Mapping[str, str]) -> str:
    q = params.get("q", "")
    if len(q) > 200:
        raise BadRequest("q must be at most 200 characters", field="q")
    if not q.isprintable():
        raise BadRequest("q must not contain control characters", field="q")
    return q.lower()


def order(
    value: str | None, columns: tuple[str, ...], default: tuple[OrderKey, ...]
) -> tuple[OrderKey, ...]:
    if value is None or value == "":
        return default
    keys = []
    for item in value.split(","):
        column = item.strip()
        descending = column.startswith("-")
        column = column.removeprefix("-")
        if column not in columns:
            allowed = ", ".join(columns)
            raise BadRequest(f"order takes columns among {allowed}", field="order")
        keys.append((column, descending))
    return tuple(keys)


def page(params: Mapping[str, str], *, default_limit: int) -> Page:
    return Page(
        limit=_bounded(params, "limit", default_limit, 1, MAX_LIMIT),
        offset=_bounded(params, "offset", 0, 0, 10**9),
    )


def _bounded(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    # Count the digits before int(): Python refuses to convert more than 4,300
    # (a ValueError, its guard against quadratic-time parsing), and no bound here needs them.
    digits = raw.lstrip("0") or "0"
    fits = raw.isascii() and raw.isdigit() and len(digits) <= len(str(high))
    if not fits or not low <= int(digits) <= high:
        raise BadRequest(f"{name} must be an integer from {low} to {high}", field=name)
    return int(digits)
