"""Query strings of the admin lists: search, filters, order and pages (spec section 4).

``order`` is a comma list of columns, ``-`` before one for descending
(``order=user,-created_at``); an unknown column is a 400 naming ``order``.
Unknown query parameters are ignored, as most HTTP APIs do. Each list's
parameters are declared once, as a table of ``Param`` (how a value is read and
how it is documented); ``admin.openapi_paths`` documents the same tables.
Pure module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from admin.errors import BadRequest
from admin.values import unicode_text
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
MAX_OFFSET = 10**9
MAX_SEARCH = 200

Json = dict[str, Any]

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


@dataclass(frozen=True)
class Param:
    """One query parameter: how its text (None when absent) is read, and its JSON Schema.

    Both may depend on the API names a token list can be filtered by.
    """

    name: str
    read: Callable[[str | None, frozenset[str]], Any]
    schema: Callable[[Sequence[str]], Json]
    description: str = ""

    def json(self, apis: Sequence[str]) -> Json:
        """The parameter as an OpenAPI ``parameters`` entry."""
        described = {"description": self.description} if self.description else {}
        return {
            "name": self.name,
            "in": "query",
            "schema": self.schema(apis),
            "required": False,
            **described,
        }


def _text(_apis: Sequence[str]) -> Json:
    return {"type": "string"}


def _as_is(raw: str | None, _apis: frozenset[str]) -> str | None:
    return raw


def read(table: Sequence[Param], params: Mapping[str, str], apis: frozenset[str]) -> dict[str, Any]:
    """Each parameter of ``table``, read from ``params`` (a 400 naming the first bad one)."""
    for param in table:
        if (raw := params.get(param.name)) is not None:
            # Unreachable through a URL (its bytes decode with replacement), but a
            # caller of this pure reader may pass any str: refuse a lone surrogate.
            unicode_text(raw, param.name)
    return {param.name: param.read(params.get(param.name), apis) for param in table}


def _search(raw: str | None, _apis: frozenset[str]) -> str:
    q = raw or ""
    if len(q) > MAX_SEARCH:
        raise BadRequest(f"q must be at most {MAX_SEARCH} characters", field="q")
    if not q.isprintable():
        raise BadRequest("q must not contain control characters", field="q")
    return q.lower()


def _statuses(raw: str | None, _apis: frozenset[str]) -> frozenset[str] | None:
    """``status=revoked`` or a comma list such as ``status=active,expired``."""
    if raw is None:
        return None
    statuses = frozenset(item.strip() for item in raw.split(","))
    if not statuses <= set(TOKEN_STATUSES):
        message = f"status must be one of {', '.join(TOKEN_STATUSES)}, or a comma list of them"
        raise BadRequest(message, field="status")
    return statuses


def _api(raw: str | None, apis: frozenset[str]) -> str | None:
    if raw is not None and raw not in apis:
        raise BadRequest("api must be the name of a configured API or admin", field="api")
    return raw


def _since(raw: str | None, _apis: frozenset[str]) -> int | None:
    """Milliseconds since the epoch (never before it), from an RFC 3339 timestamp."""
    if raw is None:
        return None
    try:
        since_ms = int(clock.from_rfc3339(raw).timestamp() * 1000)
    except (ValueError, OverflowError):
        message = "since must be an RFC 3339 timestamp with a time zone"
        raise BadRequest(message, field="since") from None
    return max(since_ms, 0)


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


def _order_param(columns: tuple[str, ...], default: tuple[OrderKey, ...]) -> Param:
    column = "-?(" + "|".join(columns) + ")"
    return Param(
        "order",
        lambda raw, _: order(raw, columns, default),
        lambda _: {"type": "string", "pattern": f"^{column}(,{column})*$"},
        "comma list of columns, '-' for descending; unknown column: 400",
    )


def bounded(raw: str | None, name: str, default: int, low: int, high: int) -> int:
    if raw is None:
        return default
    # Count the digits before int(): Python refuses to convert more than 4,300
    # (a ValueError, its guard against quadratic-time parsing), and no bound here needs them.
    digits = raw.lstrip("0") or "0"
    fits = raw.isascii() and raw.isdigit() and len(digits) <= len(str(high))
    if not fits or not low <= int(digits) <= high:
        raise BadRequest(f"{name} must be an integer from {low} to {high}", field=name)
    return int(digits)


def _integer(name: str, default: int, low: int, high: int) -> Param:
    return Param(
        name,
        lambda raw, _: bounded(raw, name, default, low, high),
        lambda _: {"type": "integer", "minimum": low, "maximum": high},
    )


#: One status, or a comma list of them (``active,expired`` hides revoked tokens).
_ONE_STATUS = f"({'|'.join(TOKEN_STATUSES)})"
_STATUS_LIST = f"^{_ONE_STATUS}(,{_ONE_STATUS})*$"

Q = Param(
    "q",
    _search,
    lambda _: {"type": "string", "maxLength": MAX_SEARCH},
    "case-insensitive partial match",
)
PAGE = (_integer("limit", 50, 1, MAX_LIMIT), _integer("offset", 0, 0, MAX_OFFSET))

#: ``GET /tokens`` and ``GET /me/tokens``.
TOKEN_PARAMS = (
    Q,
    Param("user", _as_is, _text),
    Param(
        "status",
        _statuses,
        lambda _: {"type": "string", "pattern": _STATUS_LIST},
        "one status or a comma list of them",
    ),
    Param("role", _as_is, _text),
    Param("api", _api, lambda apis: {"enum": list(apis)}, "effective level above none"),
    _order_param(TOKEN_COLUMNS, TokenQuery.order),
    *PAGE,
)
#: ``GET /users``.
USER_PARAMS = (Q, _order_param(USER_COLUMNS, UserQuery.order), *PAGE)
#: ``GET /audit``.
AUDIT_PARAMS = (
    Param("since", _since, lambda _: {"type": "string", "format": "date-time"}),
    _integer("limit", 100, 1, MAX_LIMIT),
)


def token_query(params: Mapping[str, str], apis: frozenset[str]) -> TokenQuery:
    values = read(TOKEN_PARAMS, params, apis)
    return TokenQuery(
        q=values["q"],
        user=values["user"],
        status=values["status"],
        role=values["role"],
        api=values["api"],
        order=values["order"],
        page=Page(values["limit"], values["offset"]),
    )


def user_query(params: Mapping[str, str]) -> UserQuery:
    values = read(USER_PARAMS, params, frozenset())
    return UserQuery(
        q=values["q"], order=values["order"], page=Page(values["limit"], values["offset"])
    )


def audit_query(params: Mapping[str, str]) -> AuditQuery:
    values = read(AUDIT_PARAMS, params, frozenset())
    return AuditQuery(since_ms=values["since"], limit=values["limit"])


# -- least privilege from observed use (admin/views_advice.py) ----------------

#: ``GET /tokens/{id}/usage`` and ``/advice``: the window, 1 to ``tokens.usage_days``
#: days (the bound is the config's: ``window`` reads it, the document names it).
WINDOW_PARAMS = (
    Param(
        "days",
        _as_is,
        lambda _: {"type": "integer", "minimum": 1},
        "UTC days ending today, 1 to tokens.usage_days (default 30, or usage_days if less)",
    ),
)


def window(params: Mapping[str, str], usage_days: int, default: int) -> int:
    """The ``days`` of a usage or advice query; a 400 naming ``days`` outside 1..usage_days."""
    return bounded(params.get("days"), "days", min(default, usage_days), 1, usage_days)
