"""The [[notify]] and [notices] keys (sidecar/confignotify.py): checked, secrets kept hidden."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.config import ConfigError, NoticesConfig, parse
from sidecar.confignotify import unsigned

HOOK = {"url": "https://hooks.example.org/k", "secret": "s3cret-value"}


def _problems(raw: dict[str, Any], environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(raw, environ or {})
    return caught.value.problems


def test_a_webhook_gets_the_documented_defaults() -> None:
    """days_before [30, 7, 1], both events and a 10 s timeout when the table says nothing else."""
    [hook] = parse({"notify": [HOOK]}, {}).notify

    assert (hook.days_before, hook.events, hook.timeout) == (
        (30, 7, 1),
        ("token.expiring", "token.leaked"),
        10.0,
    )


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({**HOOK, "url": "ftp://hooks.example.org"}, "notify[0].url: is not an http"),
        ({**HOOK, "url": 42}, "notify[0].url:"),
        ({"secret": "x"}, "notify[0].url: required"),
        ({**HOOK, "days_before": [7, 0]}, "notify[0].days_before:"),
        ({**HOOK, "days_before": []}, "notify[0].days_before:"),
        ({**HOOK, "events": ["token.deleted"]}, "notify[0].events:"),
        ({**HOOK, "timeout": 0}, "notify[0].timeout:"),
        ({**HOOK, "secret_env": "X"}, "notify[0].secret_env: choose"),
        ({**HOOK, "colour": "red"}, "notify[0].colour: unknown key"),
    ],
)
def test_each_bad_webhook_key_is_named_with_its_index(table: dict[str, Any], problem: str) -> None:
    """Every kind of bad [[notify]] entry stops the start naming notify[i].key."""
    assert any(p.startswith(problem) for p in _problems({"notify": [table]})), problem


def test_a_bad_url_or_secret_is_not_echoed() -> None:
    """A URL or secret refused is not repeated in the message: it may be a credential."""
    problems = _problems({"notify": [{"url": "gopher://user:pw@host", "secret": 918273645}]})

    assert problems == [
        "notify[0].url: is not an http:// or https:// URL",
        "notify[0].secret: is not a string",
    ]


def test_the_secret_comes_from_the_variable_secret_env_names_even_a_keystile_one() -> None:
    """secret_env reads the variable at start; a KEYSTILE_* name is not an unknown variable."""
    table = {"url": HOOK["url"], "secret_env": "KEYSTILE_HOOK_SECRET"}
    [hook] = parse({"notify": [table]}, {"KEYSTILE_HOOK_SECRET": "from-env"}).notify

    assert hook.secret == "from-env"
    unset = _problems({"notify": [table]})
    assert unset == ["notify[0].secret_env: the variable KEYSTILE_HOOK_SECRET is unset or empty"]


def test_a_webhook_never_shows_its_secret_or_url_in_its_repr() -> None:
    """The config's repr (tracebacks, logs) holds neither the secret nor the URL's credential."""
    config = parse({"notify": [{**HOOK, "url": "https://u:pw@hooks.example.org/k"}]}, {})

    assert "s3cret-value" not in repr(config) and "pw@" not in repr(config)


def test_a_webhook_without_a_secret_is_accepted_and_named_as_unsigned() -> None:
    """Neither secret nor secret_env: the start goes on, and unsigned() names notify[i].secret."""
    config = parse({"notify": [HOOK, {"url": HOOK["url"]}]}, {})

    assert [hook.secret for hook in config.notify] == ["s3cret-value", ""]
    assert unsigned(config.notify) == ["notify[1].secret"]


def test_expiries_are_scanned_every_minute_by_default() -> None:
    """notices.scan_seconds defaults to 60: a missed notice waits at most a minute."""
    assert NoticesConfig().scan_seconds == 60.0


def test_notices_keys_read_from_the_file_and_the_environment() -> None:
    """[notices] is an ordinary section: KEYSTILE_NOTICES_SCAN_SECONDS overrides it."""
    environ = {"KEYSTILE_NOTICES_SCAN_SECONDS": "30"}
    config = parse({"notices": {"retry_first_seconds": 2, "concurrency": 4}}, environ)

    assert (config.notices.scan_seconds, config.notices.retry_first_seconds) == (30.0, 2.0)
    assert config.notices.concurrency == 4
