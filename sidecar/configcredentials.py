"""The keys of how credentials are issued, checked and kept: ``[tokens]``, ``[hashing]``,
``[cache]``, ``[limits]``, ``[retention]`` and ``[headers]``, each declared once
(``sidecar.configschema.key``).

Read through ``sidecar.config``, which owns loading and the rules across keys.
Pure module: no aiohttp, no redis.
"""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.configchecks import HEADER_NAME, TOKEN_PREFIX, delay, integer, months, number, string
from sidecar.configschema import key


@dataclass(frozen=True)
class TokensConfig:
    prefix: str = key(
        "ks",
        string(TOKEN_PREFIX),
        "the first part of every token (`ks_<client_id>_<secret><checksum>`)",
    )
    expiry_months_choices: tuple[int, ...] = key(
        (3, 6, 12), months, "the expiries, in months, a new token may be given"
    )
    default_expiry_months: int = key(
        6,
        integer(1, 120, "integer 1-120, one of the choices"),
        "the expiry of a token created without one; also the expiry of a `keystile bootstrap`"
        " token",
    )
    max_grace_seconds: int = key(
        86400,
        integer(0),
        "the longest time the old secret keeps working after a regeneration",
    )
    last_used_interval: float = key(
        60.0, number(0, "seconds"), "`last_used_at` is written at most this often per token"
    )
    # -- least privilege from observed use (sidecar/verification/uses.py) --
    usage_days: int = key(
        90,
        integer(1, 3660, "integer 1-3660, days"),
        "UTC days of uses per API and method class kept per token (`/tokens/{id}/usage`,"
        " `/advice`); older days are trimmed",
    )


@dataclass(frozen=True)
class HashingConfig:
    """argon2id cost. Defaults: OWASP's m=12 MiB, t=3, p=1 profile."""

    # argon2 needs at least 8 KiB per lane.
    memory_kib: int = key(
        12 * 1024,
        lambda read: integer(8 * read["parallelism"]),
        "argon2 memory, KiB",
        text="integer ≥ 8 × parallelism",  # noqa: RUF001 (the sign the docs print)
    )
    time_cost: int = key(3, integer(1, 100), "argon2 iterations")
    parallelism: int = key(1, integer(1, 64), "argon2 lanes")
    threads: int = key(
        0,
        integer(0, 1024),
        "argon2 threads per process; `0`: the cores, split among the workers",
    )
    queue_size: int = key(
        32,
        integer(0),
        "hashings (verifications, and secrets being issued) that may wait for a thread;"
        " past that, a new one gets 503 `overloaded` at once",
    )


@dataclass(frozen=True)
class CacheConfig:
    """The verified-credential cache of each process (see sidecar/verification/cache.py)."""

    max_entries: int = key(100_000, integer(0), "entries kept; the least recently used go first")
    ttl_seconds: float = key(
        300.0,
        number(0, "seconds"),
        "longest life of an entry; a token's expiry cuts it shorter",
    )
    negative_ttl_seconds: float = key(
        10.0,
        number(0, "seconds"),
        "how long an unknown client_id is remembered (creating that id forgets it at once)",
    )
    max_staleness_seconds: float = key(
        1.0,
        number(0, "seconds"),
        "a process that has not heard from Redis for this long stops trusting its cache",
    )


@dataclass(frozen=True)
class LimitsConfig:
    wrong_secrets_per_minute: int = key(
        10,
        integer(0),
        "wrong secrets for one client_id from one address within a minute before 429;"
        " `0`: no limit",
    )
    refusal_delay_seconds: float = key(
        0.05,
        delay,
        "a guessed or forged credential waits this long for its 401 (a tarpit, as PAM's fail"
        " delay); `0`: no wait",
    )


#: Days stay under a century: a cut-off further back than that is "forever" anyway.
_DAYS = integer(0, 36500)


@dataclass(frozen=True)
class RetentionConfig:
    """How long the change log and deleted tokens' histories are kept (store.retention)."""

    audit_max_age_days: int = key(
        0,
        _DAYS,
        "audit entries older than this are dropped (the newest one always stays); `0`: kept",
    )
    audit_max_entries: int = key(
        0,
        integer(0),
        "the audit stream keeps at most this many entries, the newest; `0`: no limit",
    )
    deleted_history_days: int = key(
        0,
        _DAYS,
        "a deleted token's history is dropped this many days after the deletion; `0`: kept",
    )
    interval_seconds: float = key(
        3600.0, number(0, "seconds"), "time between two passes; the first runs at start"
    )

    @property
    def enabled(self) -> bool:
        return bool(self.audit_max_age_days or self.audit_max_entries or self.deleted_history_days)


_HEADER = string(HEADER_NAME, "header name")


@dataclass(frozen=True)
class HeadersConfig:
    """Names of the identity headers set upstream and of the header credential pair."""

    user: str = key("X-Auth-User", _HEADER, "the token's username, sent upstream")
    client_id: str = key("X-Auth-Client-Id", _HEADER, "the token's client_id, sent upstream")
    role: str = key("X-Auth-Role", _HEADER, "the token's role, sent upstream (absent without one)")
    access: str = key(
        "X-Auth-Access",
        _HEADER,
        "the level (`read` or `full`) that allowed the request, sent upstream",
    )
    request_id: str = key(
        "X-Request-Id",
        _HEADER,
        "the request id, kept from the client when well-formed, returned on every answer",
    )
    credential_client_id: str = key(
        "X-Client-Id", _HEADER, "the client_id half of the header credential pair"
    )
    credential_client_secret: str = key(
        "X-Client-Secret",
        _HEADER,
        "the secret half of the header credential pair",
    )
