"""Access policy: the effective level and what each level allows (spec section 1)."""

from __future__ import annotations

import pytest

from sidecar.policy import Level, allows, effective_level


@pytest.mark.parametrize(
    ("access", "role_access", "expected"),
    [
        ({"orders": "read"}, {"orders": "full"}, Level.READ),  # token entry first
        ({"*": "full"}, {"orders": "none"}, Level.FULL),  # token "*" beats role entry
        ({"billing": "full"}, {"orders": "read"}, Level.READ),  # then role entry
        ({}, {"*": "read"}, Level.READ),  # then role "*"
        ({}, None, Level.NONE),  # then none
        ({"orders": "none", "*": "full"}, None, Level.NONE),  # a named entry overrides "*"
        ({}, {"orders": "full", "*": "none"}, Level.FULL),
    ],
)
def test_effective_level_follows_the_documented_order(
    access: dict[str, str], role_access: dict[str, str] | None, expected: Level
) -> None:
    """Token entry, token "*", role entry, role "*", none: the first one present wins."""
    assert effective_level("orders", access, role_access) is expected


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "get"])
def test_read_allows_safe_methods(method: str) -> None:
    """read lets GET, HEAD and OPTIONS through."""
    assert allows(Level.READ, method)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "TRACE", "CONNECT"])
def test_read_refuses_unsafe_methods(method: str) -> None:
    """read refuses every method that can change state."""
    assert not allows(Level.READ, method)


def test_full_allows_everything_and_none_nothing() -> None:
    """full allows any method; none allows not even GET."""
    assert allows(Level.FULL, "DELETE")
    assert not allows(Level.NONE, "GET")
