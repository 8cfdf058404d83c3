"""Which API a request path belongs to, and the path its upstream receives.

The decision is made on the raw (still percent-encoded) path, and the upstream
receives exactly that path minus the API prefix, so the path the policy sees
is the path the upstream gets. Paths that could be read differently by the
upstream (dot segments, also encoded as ``%2e``; encoded ``/`` or ``\\``;
empty segments) are refused rather than normalised: RFC 3986 section 5.2.4
normalisation differs between servers, and a refusal cannot be misread. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from sidecar.config import ApiConfig


class UnsafePath(ValueError):
    """The path could climb out of its API prefix on some server."""


@dataclass(frozen=True)
class Route:
    api: ApiConfig
    #: The raw path sent upstream (prefix stripped when the API says so).
    upstream_path: str


def check_path(raw_path: str) -> None:
    if not raw_path.startswith("/"):
        raise UnsafePath("the path must start with /")
    segments = raw_path.split("/")[1:]
    for index, segment in enumerate(segments):
        decoded = unquote(segment, errors="strict") if "%" in segment else segment
        if decoded in (".", ".."):
            raise UnsafePath("the path contains a dot segment")
        if "/" in decoded or "\\" in decoded or "\x00" in decoded:
            raise UnsafePath("the path contains an encoded separator")
        if segment == "" and index != len(segments) - 1:
            raise UnsafePath("the path contains an empty segment")


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
