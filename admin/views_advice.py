"""``/admin/v1/tokens/{id}/usage``, ``/advice`` and ``/advice/apply``: least privilege from use.

The counts come from sidecar/store/uses.py, the proposal from the pure
admin/advice.py. Applying is an ordinary edit of the token's ``access``: the
same store call as ``PATCH /tokens/{id}`` (one transaction, history action
``updated`` with the caller as actor, the invalidation event), so the proxy
enforces the new map before the call answers. A proposal equal to the
token's map changes nothing and records nothing. Any token may read the usage
and advice of its own user's tokens under ``/me/tokens/{id}``; applying stays
an admin change. Admin calls are uses of ``admin`` (counted in
``views_shared.admin_caller``), so the proposal can narrow admin access too;
a token applying its own advice is refused (409) when that would leave it
without ``full`` on ``admin``, the level needed to undo it (docs/choices.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from admin import advice, queries, schema
from admin.authz import ADMIN_API, Caller
from admin.errors import Conflicting, NotFound
from admin.state import RULES, STORE
from admin.views_shared import (
    admin_caller,
    answer,
    client_id_of,
    own_caller,
    read_body,
    token_view,
)
from sidecar import clock
from sidecar.policy import Level
from sidecar.records import Role, Token
from sidecar.store.uses import read_uses
from sidecar.usedays import first_day

routes = web.RouteTableDef()
BASE = "/admin/v1/tokens/{client_id}"
#: Self-service: the same reads on the caller's own user's tokens (applying is for admins).
MINE = "/admin/v1/me/tokens/{client_id}"


@dataclass(frozen=True)
class Window:
    days: int
    since: str
    today: str


def _window(days: int) -> Window:
    today = clock.now().date()
    return Window(days, first_day(today, days), today.isoformat())


async def _token(request: web.Request, owner: str | None = None) -> Token:
    """The token of the path; with ``owner``, one of another user is as one that does not exist."""
    token = await request.app[STORE].get_token(client_id_of(request))
    if token is None or (owner is not None and token.user.lower() != owner.lower()):
        raise NotFound("no token has this client_id")
    return token


def _query_window(request: web.Request) -> Window:
    usage_days = request.app[RULES].usage_days
    return _window(queries.window(request.query, usage_days, advice.DEFAULT_DAYS))


@routes.get(BASE + "/usage")
async def token_usage(request: web.Request) -> web.Response:
    await admin_caller(request)
    return await _usage(request, _query_window(request), await _token(request))


@routes.get(MINE + "/usage")
async def my_token_usage(request: web.Request) -> web.Response:
    found = await own_caller(request)
    return await _usage(request, _query_window(request), await _token(request, found.username))


async def _usage(request: web.Request, window: Window, token: Token) -> web.Response:
    days = await read_uses(request.app[STORE], token.client_id, window.since)
    apis = (*request.app[RULES].apis, ADMIN_API)
    return answer(
        advice.usage_view(token.client_id, window.days, window.since, window.today, days, apis)
    )


async def _advice(request: web.Request, token: Token, window: Window) -> dict[str, object]:
    return (await _proposal(request, token, window))[0]


async def _proposal(
    request: web.Request, token: Token, window: Window
) -> tuple[dict[str, object], advice.Advice, Role | None]:
    store, apis = request.app[STORE], request.app[RULES].apis
    role = await store.get_role(token.role) if token.role else None
    counted = await read_uses(store, token.client_id, window.since)
    uses = advice.per_api(counted, (*apis, ADMIN_API))
    found = advice.advise(token.access, token.role, role.access if role else None, apis, uses)
    view = advice.advice_view(token.client_id, window.days, window.since, token.role, found, uses)
    return view, found, role


@routes.get(BASE + "/advice")
async def token_advice(request: web.Request) -> web.Response:
    await admin_caller(request)
    window = _query_window(request)
    return answer(await _advice(request, await _token(request), window))


@routes.get(MINE + "/advice")
async def my_token_advice(request: web.Request) -> web.Response:
    found = await own_caller(request)
    window = _query_window(request)
    return answer(await _advice(request, await _token(request, found.username), window))


@routes.post(BASE + "/advice/apply")
async def apply_advice(request: web.Request) -> web.Response:
    found = await admin_caller(request)
    rules = request.app[RULES]
    days, expected = schema.advice_apply(await read_body(request, optional=True), rules)
    token = await _token(request)
    window = _window(days or min(advice.DEFAULT_DAYS, rules.usage_days))
    _, proposal, role = await _proposal(request, token, window)
    proposed = proposal.proposed
    if expected is not None and expected != proposed:
        message = "the proposal is not the one expected any more; nothing was changed"
        raise Conflicting(message, field="expected")
    _not_locked_out(found, token, proposed)
    # Explicit "none" entries that change no level are not worth a history entry.
    if proposed == token.access or proposal.unchanged:
        return answer(token_view(token))
    changes = {"access": proposed}
    store = request.app[STORE]
    # A concurrent edit of the access, the role or the role's access between the
    # read and the write is a 409: the proposal was made from what was read.
    seen = role.access if role else None
    updated = await store.patch_token(
        token.client_id,
        changes,
        found.username,
        unless_changed=token,
        role_access=seen,
        releases=False,
    )
    return answer(token_view(updated))


def _not_locked_out(found: Caller, token: Token, proposed: dict[str, str]) -> None:
    """409 when the calling token would lose ``full`` on ``admin``: it could not undo this."""
    if found.client_id != token.client_id or proposed[ADMIN_API] == Level.FULL.value:
        return
    message = (
        "applying this would leave the calling token without full access to the admin API;"
        " apply it with another admin token"
    )
    raise Conflicting(message, field="access.admin")
