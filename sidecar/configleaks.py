"""The keys of the leak-report endpoint: ``[leaks]`` (spec section 10, "Leak response"),
each declared once (``sidecar.configschema.key``).

Read through ``sidecar.config``; what the endpoint does with them is
docs/leaks.md. Pure module: no aiohttp, no redis.
"""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.configchecks import boolean, choice, delay, integer
from sidecar.configschema import key

#: What a verified leaked token becomes: revoked for good, or kept with no access at all.
ACTIONS = ("revoke", "quarantine")


@dataclass(frozen=True)
class LeaksConfig:
    enabled: bool = key(
        True, boolean, "answer `POST /_keystile/leaks` on the proxy listener; `false`: 404"
    )
    action: str = key(
        "revoke",
        choice(*ACTIONS),
        "what a reported token that verifies becomes: revoked, or quarantined (access"
        ' `{"*": "none"}`, no role: it authenticates but reaches nothing)',
    )
    rate_per_minute: int = key(
        60,
        integer(0),
        "reports accepted from one client address per minute, across replicas; past it 429;"
        " `0`: no limit",
    )
    max_tokens: int = key(100, integer(1, 1000), "tokens in one report; past it 400 `tokens`")
    max_body_bytes: int = key(
        64 * 1024, integer(256, 1024 * 1024), "bytes of one report's body; past it 413"
    )
    answer_floor_seconds: float = key(
        1.0,
        delay,
        "a report is answered no sooner than this after it arrived, so the answer's timing"
        " does not tell a real token from a fake one; `0`: no floor",
    )
