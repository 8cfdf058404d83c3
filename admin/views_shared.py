"""What every admin view shares: who is calling, path values, and JSON answers.

Every answer carries ``Cache-Control: no-store``: admin answers describe
credentials, and the ones that carry a secret must never be kept by a cache.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from admin import body
from admin.authz import Caller, require_admin
from admin.errors import Forbidden, NotFound
from admin.queries import TokenQuery
from admin.search import search
from admin.state import CONFIG, INDEX, SERVICE, STORE, VERIFIER
from sidecar import clock, tokenformat
from sidecar.records import Token
from sidecar.store import graceuses
from sidecar.verification.issuing import Issued

NO_STORE = {"Cache-Control": "no-store"}


async def caller(request: web.Request) -> Caller:
    """Any valid token: enough for the self-service endpoints."""
    return await request.app[VERIFIER].caller(request)


async def own_caller(request: web.Request) -> Caller:
    """Any valid token not quarantined by a leak report: the self-service endpoints' caller.

    A quarantined token reaches no API; on ``/me`` it could still revoke, delete
    or end the grace of its user's other tokens, so it is refused there too.
    """
    found = await caller(request)
    token = await request.app[STORE].get_token(found.client_id)
    if token is not None and token.quarantined_at:
        raise Forbidden("this token was quarantined after a leak report")
    return found


async def admin_caller(request: web.Request) -> Caller:
    """A token with ``read`` on ``admin`` (GETs) or ``full`` (everything else); counted as a use."""
    found = await caller(request)
    require_admin(found, request.method)
    # Authorized, as a forwarded proxy request: a use of the API `admin` (least-privilege.md).
    request.app[VERIFIER].used_admin(found, request.method)
    return found


async def read_body(request: web.Request, *, optional: bool = False) -> dict[str, Any]:
    return await body.read_object(
        request, request.app[CONFIG].admin.max_body_bytes, optional=optional
    )


def answer(payload: Mapping[str, Any], status: int = 200) -> web.Response:
    return web.json_response(dict(payload), status=status, headers=NO_STORE)


def no_content() -> web.Response:
    """204, for a deletion."""
    return web.Response(status=204, headers=NO_STORE)


#: The header that carries a 204's ``propagation`` (docs/choices.md: a DELETE keeps its 204).
PROPAGATION_HEADER = "Keystile-Propagation"


async def propagated_no_content(request: web.Request) -> web.Response:
    """204 once the deletion reached every live replica (or the timeout), saying which."""
    propagation = await request.app[SERVICE].propagated()
    header = json.dumps(propagation, separators=(",", ":"))
    return web.Response(status=204, headers={**NO_STORE, PROPAGATION_HEADER: header})


async def propagated(
    request: web.Request, payload: Mapping[str, Any], status: int = 200
) -> web.Response:
    """``payload`` with ``propagation``, once the change reached every live replica."""
    propagation = await request.app[SERVICE].propagated()
    return answer({**payload, "propagation": propagation}, status)


def client_id_of(request: web.Request) -> str:
    client_id = request.match_info["client_id"]
    if not tokenformat.looks_like_client_id(client_id):
        raise NotFound("no token has this client_id")
    return client_id


def token_view(token: Token) -> dict[str, Any]:
    return token.public(clock.now())


async def token_record(request: web.Request, token: Token) -> dict[str, Any]:
    """One token's record: its view, and while a grace period is open, who still uses the
    old secret (one store read then, none otherwise; lists show no ``grace``)."""
    now = clock.now()
    grace = None
    if token.grace_until and graceuses.is_open(token, now):
        grace = await graceuses.read(request.app[STORE], token.client_id, token.grace_until)
    return {**token.public(now), "grace": grace}


def issued_view(issued: Issued) -> dict[str, Any]:
    """The one answer that carries a secret: at creation and at regeneration."""
    return {
        **token_view(issued.token),
        "client_secret": issued.client_secret,
        "token": issued.bearer,
    }


async def token_page(request: web.Request, query: TokenQuery) -> dict[str, Any]:
    """``{"items", "total", "limit", "offset"}`` for a token query."""
    store = request.app[STORE]
    sorts_on_last_use = any(column == "last_used_at" for column, _ in query.order)
    rows = await request.app[INDEX].current(fresh_last_used=sorts_on_last_use)
    roles = {role.name: role.access for role in await store.roles()} if query.api else {}
    now = clock.now()
    total, client_ids = search(rows, query, roles, clock.to_rfc3339(now))
    items = [token.public(now) for token in await store.tokens(client_ids) if token]
    return {"items": items, "total": total, "limit": query.page.limit, "offset": query.page.offset}


def listed(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"items": list(items)}
