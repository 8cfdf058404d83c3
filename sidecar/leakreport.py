"""Reading a leak report's body (spec section 10, "Leak response"). Pure module.

Two shapes are accepted:

- ``{"tokens": ["ks_...", ...]}``, Keystile's own;
- GitHub's secret-scanning partner format, a JSON array of matches
  ``[{"token": "ks_...", "type": "...", "url": "...", "source": "..."}]``;
  ``type``, ``url`` and ``source`` are optional strings, and a match's
  further fields are ignored (GitHub may add some).

Each token comes back as a ``Reported``, with the match's ``url`` when GitHub
gave one (where the leak was found: logged and passed on in the notice).

A body that is neither is a ``BadReport`` naming the field (``tokens``,
``tokens.3``, ``2.token``), as the admin API names its fields; the message is
ours, never a copy of the body, so no token can come back in an error.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from sidecar.errors import KeystileError

#: Longer than any token of any prefix (16 + 1 + 22 + 1 + 32 + 6 = 78); a longer
#: string is no token, and refusing it keeps a report's work bounded.
MAX_TOKEN_LENGTH = 256
#: What a GitHub match may carry besides ``token``; each, when present, is a string.
GITHUB_TEXT_FIELDS = ("type", "url", "source")
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}")
#: Characters of a match's url kept for the log and the notice.
MAX_URL_LENGTH = 512


@dataclass(frozen=True, slots=True)
class Reported:
    """One reported token, and where it was found when the report says so."""

    token: str
    url: str | None = None

    def __repr__(self) -> str:
        # A reported token may be real: never let it reach a log through a repr.
        return f"Reported(token='***', url={self.url!r})"


class BadReport(KeystileError):
    """A report body that is not one of the two shapes; ``field`` names where."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "invalid_request"
    public_message: ClassVar[str] = "the leak report is malformed"

    def message(self) -> str:
        return self.reason  # written here, never copied from the body


def read_report(raw: bytes, max_tokens: int) -> list[Reported]:
    """The reported tokens, in order (repeats kept: the answer counts them all)."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise BadReport("the body is not valid JSON", field="tokens") from None
    if isinstance(body, list):
        return _github(body, max_tokens)
    if not isinstance(body, dict):
        raise BadReport('the body must be {"tokens": [...]} or an array', field="tokens")
    return _own(body, max_tokens)


def _own(body: dict[str, Any], max_tokens: int) -> list[Reported]:
    for name in body:
        if name != "tokens":
            # Named only when short: a token (56 characters at least) never comes back.
            shown = name if _FIELD_NAME.fullmatch(name) else "tokens"
            raise BadReport("unknown field (only tokens is read)", field=shown)
    if "tokens" not in body:
        raise BadReport("tokens is required", field="tokens")
    tokens = body["tokens"]
    if not isinstance(tokens, list):
        raise BadReport("tokens must be an array of strings", field="tokens")
    _count(len(tokens), max_tokens, "tokens")
    return [Reported(_token(value, f"tokens.{i}")) for i, value in enumerate(tokens)]


def _github(matches: list[Any], max_tokens: int) -> list[Reported]:
    _count(len(matches), max_tokens, "tokens")
    return [_match(match, index) for index, match in enumerate(matches)]


def _match(match: Any, index: int) -> Reported:
    if not isinstance(match, dict):
        raise BadReport("each match must be an object with a token", field=str(index))
    for name in GITHUB_TEXT_FIELDS:
        if match.get(name) is not None and not isinstance(match[name], str):
            raise BadReport(f"{name} must be a string", field=f"{index}.{name}")
    if "token" not in match:
        raise BadReport("token is required", field=f"{index}.token")
    url = match.get("url") or None
    return Reported(_token(match["token"], f"{index}.token"), url and url[:MAX_URL_LENGTH])


def _count(count: int, max_tokens: int, field: str) -> None:
    if count == 0:
        raise BadReport("a report holds at least one token", field=field)
    if count > max_tokens:
        raise BadReport(f"a report holds at most {max_tokens} tokens", field=field)


def _token(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise BadReport("a token must be a string", field=field)
    if not value or len(value) > MAX_TOKEN_LENGTH:
        raise BadReport(f"a token is 1 to {MAX_TOKEN_LENGTH} characters", field=field)
    return value
