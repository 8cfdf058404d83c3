"""Which API a path belongs to and what its upstream receives (sidecar.routing); pure."""

from __future__ import annotations

import pytest

from sidecar.config import ApiConfig
from sidecar.routing import UnsafePath, check_path, match, normalise, resolve

ORDERS = ApiConfig("orders", "/orders", "http://o")
ORDERS_V2 = ApiConfig("orders2", "/orders/v2", "http://o2")
KEEP = ApiConfig("keep", "/keep", "http://k", strip_prefix=False)
APIS = (ORDERS, ORDERS_V2, KEEP)


def routed(path: str) -> tuple[str, str] | None:
    """``(api name, upstream path)`` for ``path``, or None."""
    route = match(APIS, path)
    return None if route is None else (route.api.name, route.upstream_path)


def test_prefix_is_stripped_for_the_upstream() -> None:
    """``/orders/42`` reaches the orders upstream as ``/42``; the bare prefix as ``/``."""
    assert routed("/orders/42") == ("orders", "/42")
    assert routed("/orders") == ("orders", "/")


def test_longest_prefix_wins_at_segment_boundaries() -> None:
    """``/orders/v2/x`` is orders2; ``/ordersX`` and ``/orders/v2x`` are not."""
    assert routed("/orders/v2/x") == ("orders2", "/x")
    assert routed("/orders/v2x") == ("orders", "/v2x")
    assert routed("/ordersX") is None


def test_prefix_kept_when_the_api_says_so() -> None:
    """With strip_prefix off the upstream gets the whole path."""
    assert routed("/keep/a") == ("keep", "/keep/a")


@pytest.mark.parametrize(
    "path",
    [
        "/orders/../x",
        "/orders/%2e%2e/x",
        "/orders/%2E./x",
        "/orders/%252e%252e/x",
        "/orders/%25252e%25252e/x",
        "/orders/..;jsessionid=1/x",
        "/orders/.",
        "/orders/a%2fb",
        "/orders/a%5Cb",
        "/orders/a\\b",
        "/orders/%00",
        "/orders//x",
        "//orders",
        "orders/x",
        "*",
    ],
)
def test_unsafe_paths_are_refused(path: str) -> None:
    """Dot segments (any encoding), encoded separators, NUL and empty segments are refused."""
    with pytest.raises(UnsafePath):
        resolve(APIS, path)


@pytest.mark.parametrize("path", ["/orders/", "/orders/a.b/..c/...", "/orders/%20x", "/"])
def test_ordinary_paths_pass(path: str) -> None:
    """Trailing slashes, dots inside names and other escapes are fine."""
    check_path(path)


def test_equivalent_escapes_are_one_spelling() -> None:
    """Escaped unreserved characters are decoded; other escapes get upper-case hex."""
    assert normalise("/%6Frders/%7e%41%2f%3a") == "/orders/~A%2F%3A"
    path, route = resolve(APIS, "/%6frders/%61")
    assert (path, route.api if route else None) == ("/orders/a", ORDERS)


def test_escapes_that_are_not_utf8_are_refused() -> None:
    """``%ff`` cannot be read as text the same way everywhere: refused."""
    with pytest.raises(UnsafePath):
        resolve(APIS, "/orders/%ff%2e")
