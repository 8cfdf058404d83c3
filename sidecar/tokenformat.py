"""The credential format: generating, printing and parsing tokens (spec section 2).

A bearer token reads ``<prefix>_<client_id>_<client_secret><checksum>``:

- ``client_id``: 22 base62 characters (131 bits), public;
- ``client_secret``: 32 base62 characters (190.5 bits) from ``secrets``;
- ``checksum``: CRC32 of everything before it, 6 base62 characters, as in
  GitHub's token format. It lets the sidecar refuse a mistyped or forged token
  without a store lookup, and lets secret scanners tell real tokens from noise.

CRC32 detects every error burst of up to 32 bits, so any single changed
character of the body is caught; a changed checksum character decodes to a
different value (the encoding is fixed-width and one-to-one). Base62 keeps the
token one "word" that double-click selects and that needs no URL escaping.
Pure module: no I/O.
"""

from __future__ import annotations

import hmac
import re
import secrets
import zlib
from dataclasses import dataclass

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
CLIENT_ID_LENGTH = 22
SECRET_LENGTH = 32
CHECKSUM_LENGTH = 6

CLIENT_ID = re.compile(rf"[0-9A-Za-z]{{{CLIENT_ID_LENGTH}}}")
SECRET = re.compile(rf"[0-9A-Za-z]{{{SECRET_LENGTH}}}")
_TAIL = re.compile(
    rf"_([0-9A-Za-z]{{{CLIENT_ID_LENGTH}}})_"
    rf"([0-9A-Za-z]{{{SECRET_LENGTH}}})([0-9A-Za-z]{{{CHECKSUM_LENGTH}}})"
)


class MalformedToken(ValueError):
    """The string is not a token of this deployment; ``reason`` says why (for logs)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ParsedToken:
    client_id: str
    client_secret: str

    def __repr__(self) -> str:
        # Never let the secret reach a log through a repr.
        return f"ParsedToken(client_id={self.client_id!r}, client_secret='***')"


def _random_base62(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def new_client_id() -> str:
    return _random_base62(CLIENT_ID_LENGTH)


def new_client_secret() -> str:
    return _random_base62(SECRET_LENGTH)


#: Every two-digit base62 string, in order: a checksum is three lookups, not six divisions.
_PAIRS = [high + low for high in ALPHABET for low in ALPHABET]


def checksum(body: str) -> str:
    """The CRC32 of ``body`` as six base62 digits (62**6 > 2**32), most significant first."""
    value, third = divmod(zlib.crc32(body.encode("ascii")), 3844)
    first, second = divmod(value, 3844)
    return _PAIRS[first] + _PAIRS[second] + _PAIRS[third]


def format_token(prefix: str, client_id: str, client_secret: str) -> str:
    body = f"{prefix}_{client_id}_{client_secret}"
    return body + checksum(body)


def parse_token(prefix: str, token: str) -> ParsedToken:
    """Split a bearer token and check its checksum; no store lookup."""
    if not token.startswith(prefix + "_"):
        raise MalformedToken("wrong prefix")
    match = _TAIL.fullmatch(token, len(prefix))
    if match is None:
        raise MalformedToken("missing or malformed parts")
    client_id, client_secret, given = match.groups()
    # The checksum is not a secret, but comparing in constant time costs nothing.
    if not hmac.compare_digest(checksum(token[:-CHECKSUM_LENGTH]), given):
        raise MalformedToken("bad checksum")
    return ParsedToken(client_id, client_secret)


def looks_like_client_id(value: str) -> bool:
    return CLIENT_ID.fullmatch(value) is not None


def looks_like_secret(value: str) -> bool:
    return SECRET.fullmatch(value) is not None
