"""Reading the one credential a request presents (spec section 2).

Three methods: ``Authorization: Bearer <token>``, ``Authorization: Basic``
with ``client_id:client_secret`` (RFC 7617: split at the first colon), and a
header pair (``X-Client-Id``/``X-Client-Secret`` by default). Two methods at
once, or two ``Authorization`` fields, is a 400. Scheme names are
case-insensitive (RFC 9110 section 11.1). A scheme we do not speak counts as
no credential (spec section 3), so the client sees the 401 challenge. The query
string is never read. Pure module: takes header values, returns a value or
raises an error from ``sidecar.errors``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sidecar import tokenformat
from sidecar.config import HeadersConfig
from sidecar.errors import InvalidRequest, InvalidToken, MissingCredential

#: Longer than any real credential; refuse early rather than decode megabytes.
MAX_CREDENTIAL_LENGTH = 1024


@dataclass(frozen=True, slots=True)
class Presented:
    client_id: str
    client_secret: str
    method: str  # "bearer", "basic" or "header"

    def __repr__(self) -> str:
        return f"Presented(client_id={self.client_id!r}, method={self.method!r})"


class HeaderValues(Protocol):
    """What ``read_request`` needs of a request's headers (aiohttp's multidict has it)."""

    def getall(self, key: str, default: list[str], /) -> list[str]: ...


def read_request(headers: HeaderValues, prefix: str, names: HeadersConfig) -> Presented:
    """The credential of a request: ``read`` over its three credential headers."""
    return read(
        prefix,
        headers.getall("Authorization", []),
        headers.getall(names.credential_client_id, []),
        headers.getall(names.credential_client_secret, []),
    )


def read(
    prefix: str,
    authorization: Sequence[str],
    header_id: Sequence[str],
    header_secret: Sequence[str],
) -> Presented:
    """The credential of a request, from all values of the three relevant headers."""
    if len(authorization) > 1 or len(header_id) > 1 or len(header_secret) > 1:
        raise InvalidRequest("a credential header appears more than once")
    auth = _scheme(authorization[0]) if authorization else None
    pair = bool(header_id or header_secret)
    if auth is not None and pair:
        raise InvalidRequest("more than one credential method in one request")
    if pair:
        if not (header_id and header_secret):
            raise InvalidRequest("the client id and secret headers must be sent together")
        return _checked(header_id[0], header_secret[0], "header")
    if auth is None:
        raise MissingCredential("no credential")
    scheme, value = auth
    if scheme == "bearer":
        return _bearer(prefix, value)
    return _basic(value)


def _scheme(header: str) -> tuple[str, str] | None:
    """``(scheme, credentials)`` for Bearer or Basic; None for any other scheme."""
    _ascii(header)
    scheme, _, value = header.strip().partition(" ")
    scheme = scheme.lower()
    if scheme not in ("bearer", "basic"):
        return None
    value = value.strip()
    if not value or " " in value:
        raise InvalidRequest(f"the {scheme.title()} credential is malformed")
    return scheme, value


def _ascii(value: str) -> None:
    if len(value) > MAX_CREDENTIAL_LENGTH:
        raise InvalidRequest("a credential header is too long")
    if not value.isascii() or not value.isprintable():
        raise InvalidRequest("a credential header carries characters outside printable ASCII")


def _bearer(prefix: str, value: str) -> Presented:
    try:
        parsed = tokenformat.parse_token(prefix, value)
    except tokenformat.MalformedToken as exc:
        raise InvalidToken(exc.reason) from None
    return Presented(parsed.client_id, parsed.client_secret, "bearer")


def _basic(value: str) -> Presented:
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidRequest("the Basic credential is not base64 of UTF-8 text") from None
    client_id, colon, client_secret = decoded.partition(":")
    if not colon:
        raise InvalidRequest("the Basic credential has no colon")
    return _checked(client_id, client_secret, "basic")


def _checked(client_id: str, client_secret: str, method: str) -> Presented:
    _ascii(client_id)
    _ascii(client_secret)
    if not tokenformat.looks_like_client_id(client_id):
        raise InvalidToken("malformed client_id")
    if not tokenformat.looks_like_secret(client_secret):
        raise InvalidToken("malformed client_secret")
    return Presented(client_id, client_secret, method)
