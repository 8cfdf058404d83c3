"""URLs made fit for logs and messages: every credential in them replaced by ``***``.

A Redis URL can carry a credential in three places, all of which redis-py
reads: the userinfo (``redis://user:pw@host``, and ``redis://pw@host``, where
a lone name may well be a password written in the wrong place), and query
parameters (``?password=...``, ``?username=...``, ``?sentinel_password=...``).
``redact`` replaces the whole userinfo and the value of every query parameter
whose name (percent-decoded, as redis-py decodes it) looks like a credential,
and keeps the rest (scheme, host, port, database, options) for diagnosis. A
URL it cannot take apart is not echoed at all.

Every place that logs or prints a store URL, or the admin URL the command
line calls, goes through ``redact``. Pure module: no aiohttp, no redis.
"""

from __future__ import annotations

from urllib.parse import unquote_plus, urlsplit, urlunsplit

MASK = "***"
#: Shown instead of a URL that cannot be parsed (it might hold anything).
UNREADABLE = "(a URL that cannot be parsed)"
#: A query parameter whose lowercased name contains one of these carries a credential.
CREDENTIAL_WORDS = ("pass", "pwd", "secret", "token", "auth", "user", "cred", "key")


def redact(url: str) -> str:
    """``url`` with its userinfo and credential-like query values replaced by ``***``."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a port that is not a number)
    except ValueError:
        return UNREADABLE
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query = "&".join(_redact_parameter(item) for item in parts.query.split("&"))
    # A fragment has no meaning to redis-py; it is dropped rather than inspected.
    return urlunsplit(parts._replace(netloc=netloc, query=query, fragment=""))


def _redact_parameter(item: str) -> str:
    name, equals, _ = item.partition("=")
    if equals and is_credential(unquote_plus(name)):
        return f"{name}={MASK}"
    return item


def is_credential(name: str) -> bool:
    """Whether a query parameter of this name carries a credential."""
    lowered = name.lower()
    return any(word in lowered for word in CREDENTIAL_WORDS)
