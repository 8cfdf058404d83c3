"""The access decision shared by the proxy and forward-auth.

    headers -> credentials (pure) -> verifier -> routing (pure) -> policy (pure)

``authenticate`` takes the one authentication path of every listener
(sidecar/verification/authentication.py), which records the auth outcome
(metric, and the request's ``Outcome`` for the access log) whatever it is;
``authorize`` answers the API route and the effective level, or raises the
400/403/404 of spec section 3.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from sidecar import headers, routing
from sidecar.errors import InsufficientScope, InvalidRequest, NotFound
from sidecar.policy import Level, allows, effective_level
from sidecar.proxy.state import AUTHENTICATOR, CONFIG, outcome_of
from sidecar.verification.verifier import Verified


# Not frozen: one is made per proxied request, and a frozen dataclass's __init__
# (object.__setattr__ per field) costs about 0.4 us more; nothing assigns to it.
@dataclass(slots=True)
class Decision:
    verified: Verified
    route: routing.Route
    level: Level

    @property
    def identity(self) -> headers.Identity:
        """What the identity headers say about this request."""
        v = self.verified
        return headers.Identity(v.username, v.client_id, v.role, self.level.value)


async def authenticate(request: web.Request) -> Verified:
    """The caller, through the one path the admin API shares (verification.authentication)."""
    return await request.app[AUTHENTICATOR].authenticate(request.headers, outcome_of(request))


def authorize(request: web.Request, verified: Verified, method: str, raw_path: str) -> Decision:
    """The route and level for ``method raw_path``; 400 unsafe path, 404 no API, 403."""
    config = request.app[CONFIG]
    outcome = outcome_of(request)
    try:
        _, route = routing.resolve(config.apis, raw_path)
    except routing.UnsafePath as exc:
        outcome.reason = str(exc)
        raise InvalidRequest(str(exc)) from None
    if route is None:
        outcome.reason = "no API for path"
        raise NotFound("no API for path")
    outcome.api = route.api.name
    level = effective_level(route.api.name, verified.access, verified.role_access)
    if not allows(level, method):
        outcome.reason = f"level {level.value} on {route.api.name}"
        raise InsufficientScope(outcome.reason)
    return Decision(verified, route, level)
