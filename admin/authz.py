"""Who may do what on the admin API (spec section 4). Pure module.

The caller's level on the API named ``admin`` decides: ``full`` may do
everything, ``read`` every GET, and any valid token (whatever its admin
level) may use the self-service ``/me`` endpoints on its own user's tokens.
A self-service caller can never hand out more than its own token holds on
each API, nor any level on ``admin`` or on ``*`` (which would cover the
admin API and every API added later), nor a token that outlives its own:
a short-lived credential must not be able to mint a long-lived one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from admin.errors import Forbidden
from sidecar.policy import WILDCARD, Level, allows, effective_level, level_rank

ADMIN_API = "admin"


@dataclass(frozen=True)
class Caller:
    """The authenticated client of an admin request."""

    client_id: str
    username: str
    access: Mapping[str, str] = field(default_factory=dict)
    role_access: Mapping[str, str] | None = None
    #: When the calling token expires; None only for callers built in tests.
    expires_at: datetime | None = None

    def level_on(self, api: str) -> Level:
        return effective_level(api, self.access, self.role_access)

    @property
    def admin_level(self) -> Level:
        return self.level_on(ADMIN_API)


def require_admin(caller: Caller, method: str) -> None:
    """``full`` on ``admin`` for changes, ``read`` for GETs; otherwise 403."""
    level = caller.admin_level
    if level is Level.NONE:
        raise Forbidden("this endpoint needs a level on the admin API; use /admin/v1/me")
    if not allows(level, method):
        raise Forbidden("this change needs full access to the admin API")


def check_own_grant(caller: Caller, access: Mapping[str, str]) -> None:
    """A self-service token gets at most what the calling token has, API by API."""
    for api, wanted in access.items():
        level = Level(wanted)
        if level is Level.NONE:
            continue
        where = f"access.{api}"
        if api in (ADMIN_API, WILDCARD):
            raise Forbidden(f"a self-service token cannot have a level on {api!r}", field=where)
        if level_rank(level) > level_rank(caller.level_on(api)):
            message = f"the calling token has less than {level.value!r} on {api!r}"
            raise Forbidden(message, field=where)


def own_expiry(caller: Caller, wanted: datetime, *, asked_in: str | None) -> datetime:
    """A self-service token's expiry: at most the calling token's.

    An expiry the caller asked for (in the body field ``asked_in``) beyond its
    own is refused; the default one is shortened to the caller's own.
    """
    if caller.expires_at is None or wanted <= caller.expires_at:
        return wanted
    if asked_in is not None:
        message = "a self-service token cannot outlive the calling token"
        raise Forbidden(message, field=asked_in)
    return caller.expires_at
