"""Reading a JSON request body: 415 if it is not JSON, 413 if too large, 400 if malformed.

The body is read in full (it is small: ``admin.max_body_bytes``, 64 KiB by
default) and decoded strictly: no NaN or Infinity, an object at the top.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from admin.errors import BadRequest, NotJson, TooLarge


def _is_json(content_type: str) -> bool:
    kind = content_type.lower()
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def read_object(
    request: web.Request, limit: int, *, optional: bool = False
) -> dict[str, Any]:
    """The body as a JSON object of at most ``limit`` bytes; with ``optional``, empty is ``{}``."""
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"the body must be at most {limit} bytes")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise TooLarge(f"the body must be at most {limit} bytes") from None
    if not raw and optional:
        return {}
    if not _is_json(request.content_type):
        raise NotJson("the body must be JSON (Content-Type: application/json)")
    try:
        value = json.loads(raw, parse_constant=_no_constants)
    except (ValueError, RecursionError):
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(value, dict):
        raise BadRequest("the body must be a JSON object")
    return value
