"""Which API a request path belongs to, and the path its upstream receives.

The decision is made on the raw (still percent-encoded) path, and the upstream
receives exactly that path minus the API prefix, so the path the policy sees
is the path the upstream gets. Two steps, in order:

1. ``normalise``: percent-encoded *unreserved* characters are decoded and the
   hex digits of every other escape are upper-cased. RFC 3986 section 6.2.2
   says these spellings are equivalent, so ``/%6Frders`` and ``/orders`` must
   reach the same API (and the same upstream path).
2. ``check_path``: paths that servers read differently are refused rather than
   normalised further: dot segments (``..``, ``%2e%2e``, also twice encoded,
   also with ``;params`` as Tomcat reads them), encoded ``/`` or ``\\``, NUL,
   and empty segments (``//``). RFC 3986 section 5.2.4 normalisation differs
   between servers, and a refusal cannot be misread.

Pure module.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from sidecar.config import ApiConfig

_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
#: Without any of these, a path has nothing ``check_path`` could refuse (the most
#: common case, checked in one pass per mark instead of per segment and layer).
_MARKS = ("%", ".", "\\", "\x00", "//")
#: How many layers of percent-encoding we look through for a hidden ``..`` or ``/``.
_DECODE_DEPTH = 3


class UnsafePath(ValueError):
    """The path could climb out of its API prefix on some server."""


# Not frozen: one is made per proxied request, and a frozen dataclass's __init__
# (object.__setattr__ per field) costs about 0.4 us more; nothing assigns to it.
@dataclass(slots=True)
class Route:
    api: ApiConfig
    #: The raw path sent upstream (prefix stripped when the API says so).
    upstream_path: str


def _normal_escape(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else "%" + match.group(1).upper()


def normalise(raw_path: str) -> str:
    """The path with RFC 3986 section 6.2.2 equivalent escapes made one spelling."""
    return _ESCAPE.sub(_normal_escape, raw_path) if "%" in raw_path else raw_path


def check_path(raw_path: str) -> None:
    """Raise ``UnsafePath`` unless every server reads ``raw_path`` the way we do."""
    if not raw_path.startswith("/"):
        raise UnsafePath("the path must start with /")
    if not any(mark in raw_path for mark in _MARKS):
        return  # no escape, dot, backslash, NUL or empty segment: nothing to misread
    segments = raw_path.split("/")[1:]
    for index, segment in enumerate(segments):
        if segment == "" and index != len(segments) - 1:
            raise UnsafePath("the path contains an empty segment")
        for decoded in _layers(segment):
            _check_segment(decoded)


def _layers(segment: str) -> list[str]:
    """The segment as read after 0, 1, ... decodings (an upstream may decode twice)."""
    layers = [segment]
    for _ in range(_DECODE_DEPTH):
        if "%" not in layers[-1]:
            break
        layers.append(unquote(layers[-1], errors="strict"))
    return layers


def _check_segment(decoded: str) -> None:
    # Tomcat and Spring drop ";params" before resolving dot segments: "..;x" is "..".
    if decoded.split(";", 1)[0] in (".", ".."):
        raise UnsafePath("the path contains a dot segment")
    if "/" in decoded or "\\" in decoded or "\x00" in decoded:
        raise UnsafePath("the path contains an encoded separator")


def match(apis: Sequence[ApiConfig], raw_path: str) -> Route | None:
    """The API with the longest prefix that ends at a segment boundary of the path."""
    best: ApiConfig | None = None
    for api in apis:
        prefix = api.prefix.rstrip("/")
        matches = raw_path == prefix or raw_path.startswith(prefix + "/")
        if matches and (best is None or len(api.prefix) > len(best.prefix)):
            best = api
    if best is None:
        return None
    rest = raw_path[len(best.prefix.rstrip("/")) :] if best.strip_prefix else raw_path
    return Route(best, rest or "/")


def resolve(apis: Sequence[ApiConfig], raw_path: str) -> tuple[str, Route | None]:
    """Normalise and check ``raw_path``, then match it: ``(path, route or None)``.

    Raises ``UnsafePath`` (also for escapes that are not valid UTF-8).
    """
    path = normalise(raw_path)
    try:
        check_path(path)
    except UnicodeDecodeError:
        raise UnsafePath("the path contains escapes that are not UTF-8") from None
    return path, match(apis, path)
