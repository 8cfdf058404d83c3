"""Access policy: which level a token has on an API, and what a level allows.

Spec section 1: the effective level for API ``a`` is the token's own entry
for ``a``, else the token's ``"*"``, else the role's entry for ``a``, else the
role's ``"*"``, else ``none``. ``read`` allows the safe methods of RFC 9110
section 9.2.1 (GET, HEAD, OPTIONS; TRACE is never forwarded); ``full`` allows
every method. Pure module.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

WILDCARD = "*"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Level(StrEnum):
    NONE = "none"
    READ = "read"
    FULL = "full"


LEVELS = tuple(level.value for level in Level)
#: ``Level(text)`` without the enum machinery's call (once per request).
_BY_VALUE = {level.value: level for level in Level}

AccessMap = Mapping[str, str]


def effective_level(api: str, access: AccessMap, role_access: AccessMap | None) -> Level:
    for source in (access, role_access or {}):
        for key in (api, WILDCARD):
            if key in source:
                return _BY_VALUE[source[key]]
    return Level.NONE


def allows(level: Level, method: str) -> bool:
    if level is Level.FULL:
        return True
    return level is Level.READ and method.upper() in SAFE_METHODS


def level_rank(level: Level) -> int:
    return LEVELS.index(level.value)
