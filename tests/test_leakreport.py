"""The leak report's body (sidecar/leakreport.py) and the [leaks] config keys: pure, no loop."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sidecar import config
from sidecar.leakreport import BadReport, read_report


def report(body: Any) -> list[str]:
    return [reported.token for reported in read_report(json.dumps(body).encode(), max_tokens=3)]


def test_own_shape_gives_the_tokens_in_order_with_repeats() -> None:
    """{"tokens": [...]} gives every token as sent, repeats kept for the count."""
    assert report({"tokens": ["ks_a", "ks_b", "ks_a"]}) == ["ks_a", "ks_b", "ks_a"]


def test_github_shape_gives_each_match_token() -> None:
    """GitHub's partner array gives each match's token; type, url, source and extras ignored."""
    matches = [
        {"token": "ks_a", "type": "keystile_token", "url": "https://x/y", "source": "content"},
        {"token": "ks_b", "type": "keystile_token", "url": None, "later": 1},
    ]
    assert report(matches) == ["ks_a", "ks_b"]
    urls = [reported.url for reported in read_report(json.dumps(matches).encode(), 3)]
    assert urls == ["https://x/y", None]


def test_a_reported_token_never_shows_in_its_repr() -> None:
    """A Reported's repr hides the token (it may be real), and keeps the url."""
    [reported] = read_report(b'[{"token": "ks_secretish", "url": "https://x/y"}]', 3)
    assert "ks_secretish" not in repr(reported) and "https://x/y" in repr(reported)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tokens": "ks_a"}, "tokens"),
        ({}, "tokens"),
        ({"tokens": []}, "tokens"),
        ({"tokens": ["ks_a", 3]}, "tokens.1"),
        ({"tokens": ["ks_a", ""]}, "tokens.1"),
        ({"tokens": ["x" * 257]}, "tokens.0"),
        ({"tokens": ["a", "b", "c", "d"]}, "tokens"),
        ({"tokens": ["ks_a"], "extra": 1}, "extra"),
        ([{"token": "ks_a"}, {"type": "t"}], "1.token"),
        ([{"token": "ks_a", "url": 5}], "0.url"),
        (["ks_a"], "0"),
        ("ks_a", "tokens"),
    ],
)
def test_bad_bodies_name_the_field(body: Any, field: str) -> None:
    """Each malformed report is a 400 naming the field, as the admin API names its fields."""
    with pytest.raises(BadReport) as caught:
        report(body)
    assert caught.value.status == 400
    assert caught.value.field == field


def test_invalid_json_is_a_400_naming_tokens() -> None:
    """A body that is not JSON is a 400 naming tokens."""
    with pytest.raises(BadReport) as caught:
        read_report(b"{tokens: ", max_tokens=3)
    assert caught.value.field == "tokens"


def test_deeply_nested_json_is_a_400_not_a_crash() -> None:
    """30,000 nested arrays (inside 64 KiB) are a 400 naming tokens, not a RecursionError."""
    with pytest.raises(BadReport) as caught:
        read_report(b"[" * 30000 + b"]" * 30000, max_tokens=3)
    assert caught.value.field == "tokens"


def test_an_unknown_key_that_could_be_a_token_is_not_echoed() -> None:
    """An unknown key is named only when it is short: a token put there never comes back."""
    token = "ks_" + "A" * 22 + "_" + "B" * 38
    with pytest.raises(BadReport) as caught:
        report({token: 1, "tokens": ["ks_a"]})
    assert token not in json.dumps(caught.value.body())


def test_leaks_action_outside_the_two_is_a_start_error_naming_the_key() -> None:
    """leaks.action other than revoke or quarantine stops the start, naming the key."""
    with pytest.raises(config.ConfigError) as caught:
        config.parse({"leaks": {"action": "delete"}}, {})
    assert any(p.startswith("leaks.action:") for p in caught.value.problems)


def test_leaks_defaults() -> None:
    """By default the endpoint is on, revokes, and takes 60 reports a minute per address."""
    leaks = config.parse({}, {}).leaks
    assert (leaks.enabled, leaks.action, leaks.rate_per_minute) == (True, "revoke", 60)
