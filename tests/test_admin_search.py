"""The token list's search, filters and multi-column order (admin/search.py), without I/O.

Tokens are written as the store holds them (a hash of strings); the tests
build rows with ``Row.from_fields`` and read answers through ``search``, as
the admin views do, so they hold whatever shape a row takes inside.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from admin.queries import MAX_LIMIT, TOKEN_COLUMNS, Page, TokenQuery, token_query
from admin.search import Row, search, timestamp_number

NOW = "2026-06-01T00:00:00Z"


def _token(client_id: str, **fields: str) -> dict[str, str]:
    """A token's listing fields as the store holds them."""
    return {
        "client_id": client_id,
        "user": "alice",
        "description": "",
        "role": "",
        "access": "{}",
        "revoked": "0",
        "created_at": "2026-01-01T00:00:00Z",
        "expires_at": "2027-01-01T00:00:00Z",
        "last_used_at": "",
        **fields,
    }


def _search(
    tokens: list[dict[str, str]],
    query: TokenQuery,
    roles: dict[str, dict[str, str]] | None = None,
) -> tuple[int, list[str]]:
    """``search`` as the views call it: rows from the stored fields, sorted by client_id."""
    ordered = sorted(tokens, key=lambda token: token["client_id"])
    return search([Row.from_fields(token) for token in ordered], query, roles or {}, NOW)


def _ids(
    tokens: list[dict[str, str]],
    query: TokenQuery,
    roles: dict[str, dict[str, str]] | None = None,
) -> list[str]:
    return _search(tokens, query, roles)[1]


def test_q_matches_client_id_user_or_description_in_any_case() -> None:
    """q is a case-insensitive partial match on client_id, user and description."""
    tokens = [
        _token("AbC1"),
        _token("x2", user="Bob"),
        _token("x3", description="Nightly"),
        _token("x4"),
    ]

    found = [_ids(tokens, TokenQuery(q=q)) for q in ("bc1", "bob", "nightly")]

    assert found == [["AbC1"], ["x2"], ["x3"]]


def test_status_is_derived_from_now() -> None:
    """A token is expired from the second of its expires_at; a revoked one is revoked."""
    tokens = [
        _token("a"),
        _token("b", expires_at="2026-05-31T23:59:59Z"),
        _token("c", revoked="1", expires_at="2020-01-01T00:00:00Z"),
        _token("d", expires_at=NOW),
    ]

    found = {
        status: _ids(tokens, TokenQuery(status=frozenset(status.split(","))))
        for status in ("active", "expired", "revoked", "active,expired")
    }

    assert found == {
        "active": ["a"],
        "expired": ["b", "d"],
        "revoked": ["c"],
        "active,expired": ["a", "b", "d"],
    }


def test_api_filter_counts_the_role_and_the_wildcard() -> None:
    """api=orders keeps tokens whose effective level on orders (own, then role) is not none."""
    tokens = [
        _token("own", access='{"orders": "read"}'),
        _token("star", access='{"*": "full"}'),
        _token("role", role="reader"),
        _token("denied", access='{"*": "read", "orders": "none"}', role="reader"),
        _token("other", access='{"billing": "read"}'),
    ]

    found = _ids(
        tokens,
        TokenQuery(api="orders", order=(("client_id", False),)),
        {"reader": {"orders": "read"}},
    )

    assert found == ["own", "role", "star"]


def test_nulls_sort_last_ascending_and_first_descending() -> None:
    """last_used_at and role nulls go last ascending, first descending."""
    tokens = [
        _token("a", last_used_at="2026-02-01T00:00:00Z"),
        _token("b"),
        _token("c", last_used_at="2026-03-01T00:00:00Z"),
    ]

    ascending = _ids(tokens, TokenQuery(order=(("last_used_at", False),)))
    descending = _ids(tokens, TokenQuery(order=(("last_used_at", True),)))

    assert ascending == ["a", "c", "b"]
    assert descending == ["b", "c", "a"]


def test_timestamp_numbers_keep_the_order_of_the_moments() -> None:
    """Timestamps become integers that compare as the moments do; null sorts after all."""
    stamps = ["1999-12-31T23:59:59Z", "2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z"]

    numbers = [timestamp_number(stamp) for stamp in stamps]

    assert numbers == sorted(numbers)
    assert numbers[1] == 20260101000000
    assert timestamp_number(None) > numbers[-1]


def test_mixed_directions_order_by_each_column_in_turn() -> None:
    """order=user,-created_at sorts by user, then newest first within a user."""
    tokens = [
        _token("1", user="bob", created_at="2026-01-01T00:00:00Z"),
        _token("2", user="Alice", created_at="2026-01-01T00:00:00Z"),
        _token("3", user="bob", created_at="2026-02-01T00:00:00Z"),
        _token("4", user="alice", created_at="2026-03-01T00:00:00Z"),
    ]

    found = _ids(tokens, token_query({"order": "user,-created_at"}, frozenset()))

    assert found == ["4", "2", "3", "1"]


def _moment(stamp: str) -> datetime | None:
    """A stored timestamp as the moment it names; ``""`` is null."""
    return datetime.fromisoformat(stamp) if stamp else None


def _status(token: dict[str, str]) -> str:
    """README: ``revoked``, else ``expired`` from the second ``expires_at`` is reached."""
    if token["revoked"] == "1":
        return "revoked"
    reached = datetime.fromisoformat(token["expires_at"]) <= datetime.fromisoformat(NOW)
    return "expired" if reached else "active"


def _reference(tokens: list[dict[str, str]], query: TokenQuery) -> list[str]:
    """The README's order, from the stored fields alone: one stable sort per column,
    last column first, over the tokens in client_id order."""

    def value(token: dict[str, str], column: str) -> Any:
        if column == "status":
            return _status(token)
        if column in ("user", "description"):  # case-insensitive
            return token[column].lower()
        if column == "client_id":
            return token[column]
        # Nullable: role and the timestamps. Nulls last ascending, first descending.
        known = token[column] if column == "role" else _moment(token[column])
        return (not known, known)

    ordered = sorted(tokens, key=lambda token: token["client_id"])
    for column, descending in reversed(query.order):
        ordered.sort(key=lambda token, c=column: value(token, c), reverse=descending)
    start = query.page.offset
    return [token["client_id"] for token in ordered[start : start + query.page.limit]]


#: Moments that differ in every part of the timestamp, around NOW and equal to it.
_MOMENTS = [
    "2025-12-31T23:59:59Z",
    "2026-01-01T00:00:00Z",
    "2026-01-01T00:00:01Z",
    "2026-01-01T00:01:00Z",
    "2026-01-01T01:00:00Z",
    "2026-01-02T00:00:00Z",
    "2026-02-01T00:00:00Z",
    "2026-05-31T23:59:59Z",
    NOW,
    "2026-06-01T00:00:01Z",
    "2027-01-01T00:00:00Z",
]
_tokens = st.lists(
    st.builds(
        lambda cid, user, description, role, created, expires, used, revoked: _token(
            cid, user=user, description=description, role=role, created_at=created,
            expires_at=expires, last_used_at=used, revoked=revoked,
        ),
        st.text("abcXYZ", min_size=1, max_size=4),
        st.sampled_from(["alice", "Alice", "Bob", "bob", "carol"]),
        st.sampled_from(["", "b", "A", "a c", "B"]),
        st.sampled_from(["", "ops", "dev"]),
        st.sampled_from(_MOMENTS), st.sampled_from(_MOMENTS),
        st.one_of(st.just(""), st.sampled_from(_MOMENTS)),  # null (never used) half the time
        st.sampled_from(["0", "1"]),
    ),
    max_size=40,
    unique_by=lambda token: token["client_id"],
)  # fmt: skip
#: One to three columns, each length as likely as the others: the later columns
#: of a longer order are where the sort keys mix directions.
_orders = st.integers(1, 3).flatmap(
    lambda n: st.lists(
        st.tuples(st.sampled_from(TOKEN_COLUMNS), st.booleans()), min_size=n, max_size=n
    )
)


@settings(max_examples=500, deadline=None)
@given(tokens=_tokens, order=_orders, limit=st.integers(1, 10), offset=st.integers(0, 12))
def test_every_order_and_page_matches_the_obvious_sort(
    tokens: list[dict[str, str]], order: list[tuple[str, bool]], limit: int, offset: int
) -> None:
    """Any order, whole and paged, answers as the README's sort of the stored fields would."""
    query = TokenQuery(order=tuple(order), page=Page(limit, offset))
    whole = replace(query, page=Page(MAX_LIMIT, 0))

    total, found = _search(tokens, query)
    everything = _search(tokens, whole)[1]

    assert total == len(tokens)
    assert found == _reference(tokens, query)
    assert everything == _reference(tokens, whole)
