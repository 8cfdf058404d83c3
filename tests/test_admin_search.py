"""The token list's search, filters and multi-column order (admin/search.py), without I/O."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from admin.queries import Page, TokenQuery, token_query
from admin.search import LAST_NUMBER, Row, search, timestamp_number

NOW = "2026-06-01T00:00:00Z"
COLUMNS = ("client_id", "user", "description", "role", "status", "created_at", "expires_at",
           "last_used_at")  # fmt: skip


def _row(client_id: str, **fields: Any) -> Row:
    raw = {
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
    return Row.from_fields(raw)


def _ids(
    rows: list[Row], query: TokenQuery, roles: dict[str, dict[str, str]] | None = None
) -> list[str]:
    ordered = sorted(rows, key=lambda row: row.client_id)
    return search(ordered, query, roles or {}, NOW)[1]


def test_q_matches_client_id_user_or_description_in_any_case() -> None:
    """q is a case-insensitive partial match on client_id, user and description."""
    rows = [_row("AbC1"), _row("x2", user="Bob"), _row("x3", description="Nightly"), _row("x4")]

    found = [_ids(rows, TokenQuery(q=q)) for q in ("bc1", "bob", "nightly")]

    assert found == [["AbC1"], ["x2"], ["x3"]]


def test_status_is_derived_from_now() -> None:
    """A token past its expires_at is expired; a revoked one is revoked whatever its expiry."""
    rows = [
        _row("a"),
        _row("b", expires_at="2026-05-31T23:59:59Z"),
        _row("c", revoked="1", expires_at="2020-01-01T00:00:00Z"),
    ]

    found = {
        status: _ids(rows, TokenQuery(status=status)) for status in ("active", "expired", "revoked")
    }

    assert found == {"active": ["a"], "expired": ["b"], "revoked": ["c"]}


def test_api_filter_counts_the_role_and_the_wildcard() -> None:
    """api=orders keeps tokens whose effective level on orders (own, then role) is not none."""
    rows = [
        _row("own", access='{"orders": "read"}'),
        _row("star", access='{"*": "full"}'),
        _row("role", role="reader"),
        _row("denied", access='{"*": "read", "orders": "none"}', role="reader"),
        _row("other", access='{"billing": "read"}'),
    ]

    found = _ids(
        rows,
        TokenQuery(api="orders", order=(("client_id", False),)),
        {"reader": {"orders": "read"}},
    )

    assert found == ["own", "role", "star"]


def test_nulls_sort_last_ascending_and_first_descending() -> None:
    """last_used_at and role nulls go last ascending, first descending."""
    rows = [
        _row("a", last_used_at="2026-02-01T00:00:00Z"),
        _row("b"),
        _row("c", last_used_at="2026-03-01T00:00:00Z"),
    ]

    ascending = _ids(rows, TokenQuery(order=(("last_used_at", False),)))
    descending = _ids(rows, TokenQuery(order=(("last_used_at", True),)))

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
    rows = [
        _row("1", user="bob", created_at="2026-01-01T00:00:00Z"),
        _row("2", user="Alice", created_at="2026-01-01T00:00:00Z"),
        _row("3", user="bob", created_at="2026-02-01T00:00:00Z"),
        _row("4", user="alice", created_at="2026-03-01T00:00:00Z"),
    ]

    found = _ids(rows, token_query({"order": "user,-created_at"}, frozenset()))

    assert found == ["4", "2", "3", "1"]


def _reference(rows: list[Row], query: TokenQuery) -> list[str]:
    """The obvious implementation: one stable sort per column, last column first."""

    def value(row: Row, column: str) -> Any:
        if column == "status":
            return row.status(timestamp_number(NOW))
        if column in ("user", "description"):
            return getattr(row, column + "_key")
        if column == "role":
            return (row.role is None, row.role or "")
        if column in ("created_at", "expires_at", "last_used_at"):
            number = getattr(
                row,
                {
                    "created_at": "created_n",
                    "expires_at": "expires_n",
                    "last_used_at": "last_used_n",
                }[column],
            )
            return (number == LAST_NUMBER, number)
        return getattr(row, column)

    ordered = sorted(rows, key=lambda row: row.client_id)
    for column, descending in reversed(query.order):
        ordered.sort(key=lambda row, c=column: value(row, c), reverse=descending)
    start = query.page.offset
    return [row.client_id for row in ordered[start : start + query.page.limit]]


_stamp = st.sampled_from(
    ["", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", "2026-07-01T00:00:00Z"]
)
_rows = st.lists(
    st.builds(
        lambda cid, user, description, role, created, expires, used, revoked: _row(
            cid, user=user, description=description, role=role,
            created_at=created or "2026-01-01T00:00:00Z",
            expires_at=expires or "2026-01-01T00:00:00Z", last_used_at=used, revoked=revoked,
        ),
        st.text("abcXYZ", min_size=1, max_size=4),
        st.sampled_from(["alice", "Bob", "bob", "carol"]),
        st.sampled_from(["", "b", "A", "a c"]),
        st.sampled_from(["", "ops", "dev"]),
        _stamp, _stamp, _stamp,
        st.sampled_from(["0", "1"]),
    ),
    max_size=40,
    unique_by=lambda row: row.client_id,
)  # fmt: skip
_orders = st.lists(st.tuples(st.sampled_from(COLUMNS), st.booleans()), min_size=1, max_size=3)


@settings(max_examples=300, deadline=None)
@given(rows=_rows, order=_orders, limit=st.integers(1, 10), offset=st.integers(0, 12))
def test_every_order_and_page_matches_the_obvious_sort(
    rows: list[Row], order: list[tuple[str, bool]], limit: int, offset: int
) -> None:
    """The fast paths (one composite key, a heap for a first page) answer as the plain sort."""
    query = TokenQuery(order=tuple(order), page=Page(limit, offset))

    total, found = search(sorted(rows, key=lambda row: row.client_id), query, {}, NOW)

    assert total == len(rows)
    assert found == _reference(rows, query)
