"""The keys of the expiry and leak notices (docs/notify.md): ``[[notify]]``, one table per
webhook, and ``[notices]``, how they are found and delivered; each declared once
(``sidecar.configschema.key``).

A webhook's ``secret`` may come from the file or, better, from the variable
``secret_env`` names; either way it is read once, here, and a ``WebhookConfig``
never shows it in its ``repr`` (config objects end up in tracebacks and logs).
A webhook with neither is allowed and called unsigned; ``unsigned`` names
them for the warning ``serve`` logs at start.
Read through ``sidecar.config``. Pure module: no aiohttp, no redis.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from sidecar.configchecks import Check, integer, number, string
from sidecar.configschema import Reader, key, required

#: The kinds of notice (sidecar/store/notices.py), the values of ``events``.
EVENTS = ("token.expiring", "token.leaked")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def _webhook_url(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    parts = urlsplit(text)
    if not isinstance(value, str) or parts.scheme not in ("http", "https") or not parts.hostname:
        # Not echoed: a URL may carry a credential in its userinfo or query.
        raise ValueError("is not an http:// or https:// URL")
    return text


def _days(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(f"{value!r} is not a non-empty list of days")
    days = {integer(1, 3650).convert(item) for item in value}
    return tuple(sorted(days, reverse=True))


def _events(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(f"{value!r} is not a non-empty list of events")
    unknown = [item for item in value if item not in EVENTS]
    if unknown:
        raise ValueError(f"{unknown[0]!r} is not one of {', '.join(EVENTS)}")
    return tuple(event for event in EVENTS if event in value)


def _secret(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("is not a string")  # not echoed: it is a secret
    return value


webhook_url = Check(_webhook_url, "`http://` or `https://` URL", typed_env=False)
days_list = Check(_days, "list of integers 1-3650")
events_list = Check(_events, "list of `token.expiring`, `token.leaked`")


@dataclass(frozen=True, repr=False)
class WebhookConfig:
    url: str = required(webhook_url, "where each notice is POSTed, as signed JSON")
    secret: str = key(
        "",
        Check(_secret, "string", typed_env=False),
        "the HMAC-SHA256 key of the signature headers; prefer `secret_env`; "
        "with neither, calls are unsigned (a warning at start)",
        shown="none",
    )
    secret_env: str = key(
        "",
        string(ENV_NAME, "environment variable name"),
        "the environment variable holding the secret (instead of `secret`)",
    )
    days_before: tuple[int, ...] = key(
        (30, 7, 1),
        days_list,
        "a `token.expiring` notice when an active token is this many days from expiry",
    )
    events: tuple[str, ...] = key(
        EVENTS, events_list, "the kinds of notice this webhook receives", shown="both"
    )
    timeout: float = key(
        10.0, number(0, "seconds"), "one call's whole time; past it, it is retried"
    )

    def __repr__(self) -> str:
        return f"WebhookConfig(url=<{len(self.url)} chars>, events={self.events!r}, secret=***)"


@dataclass(frozen=True)
class NoticesConfig:
    """How notices are found and delivered, for every webhook (sidecar/notify/)."""

    scan_seconds: float = key(
        60.0,
        number(0, "seconds"),
        "time between two passes over the tokens looking for expiries (one replica runs each)",
    )
    retry_first_seconds: float = key(
        1.0, number(0, "seconds"), "the wait before the first retry of a failed call; it doubles"
    )
    retry_max_seconds: float = key(
        600.0, number(0, "seconds"), "the longest wait between two retries"
    )
    retry_for_seconds: float = key(
        86400.0,
        number(0, "seconds"),
        "a notice not delivered this long after it was queued is given up (a warning)",
    )
    claim_after_seconds: float = key(
        300.0,
        number(0, "seconds"),
        "a notice held this long by a replica that stopped answering is taken over by another",
    )
    concurrency: int = key(16, integer(1, 1024), "notices being delivered at once, per process")


def unsigned(hooks: tuple[WebhookConfig, ...]) -> list[str]:
    """The ``notify[i].secret`` keys of the webhooks that will be called unsigned."""
    return [f"notify[{i}].secret" for i, hook in enumerate(hooks) if not hook.secret]


def webhooks(
    raw: Any, problems: list[str], environ: Mapping[str, str]
) -> tuple[WebhookConfig, ...]:
    """The ``[[notify]]`` tables, each problem named ``notify[i].key``."""
    if not isinstance(raw, list):
        problems.append("notify: must be an array of tables ([[notify]])")
        return ()
    found = [_webhook(i, item, problems, environ) for i, item in enumerate(raw)]
    return tuple(hook for hook in found if hook is not None)


def _webhook(
    index: int, item: Any, problems: list[str], environ: Mapping[str, str]
) -> WebhookConfig | None:
    where = f"notify[{index}]"
    if not isinstance(item, dict):
        problems.append(f"{where}: must be a table")
        return None
    before = len(problems)
    values = Reader(problems, {}).read(WebhookConfig, item, where)
    if len(problems) > before:
        return None
    hook = WebhookConfig(**values)
    if hook.secret and hook.secret_env:
        problems.append(f"{where}.secret_env: choose secret or secret_env, not both")
    elif hook.secret_env:
        hook = replace(hook, secret=environ.get(hook.secret_env, ""))
        if not hook.secret:
            problems.append(f"{where}.secret_env: the variable {hook.secret_env} is unset or empty")
    return hook if len(problems) == before else None
