"""``/admin/v1/me``: self-service for any valid token, on its own user's tokens only.

A token of another user answers exactly as a token that does not exist. A new
token gets at most the calling token's level on each API, never a level on
``admin`` or ``*``, never a role (spec section 4), and never a later expiry
than the calling token's.
"""

from __future__ import annotations

from dataclasses import replace

from aiohttp import web

from admin import queries, schema
from admin.authz import ADMIN_API, check_own_grant, own_expiry
from admin.errors import NotFound
from admin.state import CONFIG, RULES, SERVICE, STORE
from admin.views_shared import (
    answer,
    client_id_of,
    issued_view,
    own_caller,
    propagated,
    propagated_no_content,
    read_body,
    token_page,
    token_record,
    token_view,
)
from sidecar import clock

routes = web.RouteTableDef()
BASE = "/admin/v1/me"


@routes.get(BASE)
async def me(request: web.Request) -> web.Response:
    found = await own_caller(request)
    store = request.app[STORE]
    user = await store.get_user(found.username)
    token = await store.get_token(found.client_id)
    if user is None or token is None:  # deleted in the last instant
        raise NotFound("the calling token no longer exists")
    apis = [api.name for api in request.app[CONFIG].apis] + [ADMIN_API]
    levels = {api: found.level_on(api).value for api in apis}
    return answer({"user": user.public(), "token": token_view(token), "levels": levels})


@routes.get(f"{BASE}/tokens")
async def my_tokens(request: web.Request) -> web.Response:
    found = await own_caller(request)
    query = queries.token_query(request.query, request.app[RULES].access_keys - {"*"})
    return answer(await token_page(request, replace(query, user=found.username)))


@routes.post(f"{BASE}/tokens")
async def create_my_token(request: web.Request) -> web.Response:
    found = await own_caller(request)
    body = await read_body(request)
    draft = schema.new_own_token(body, request.app[RULES], clock.now(), found.username)
    check_own_grant(found, draft.access)
    asked_in = next((f for f in ("expires_at", "expires_in_months") if f in body), None)
    draft = replace(draft, expires_at=own_expiry(found, draft.expires_at, asked_in=asked_in))
    issued = await request.app[SERVICE].create_token(draft, found.username)
    return answer(issued_view(issued), status=201)


@routes.post(BASE + "/tokens/{client_id}/revoke")
async def revoke_my_token(request: web.Request) -> web.Response:
    found = await own_caller(request)
    client_id = client_id_of(request)
    schema.EMPTY.check(await read_body(request, optional=True))
    store = request.app[STORE]
    (token,) = await store.revoke_tokens([client_id], found.username, owner=found.username)
    return await propagated(request, token_view(token))


@routes.post(BASE + "/tokens/{client_id}/end-grace")
async def end_my_grace(request: web.Request) -> web.Response:
    """The old secret of one of the caller's user's tokens stops working now."""
    found = await own_caller(request)
    client_id = client_id_of(request)
    schema.EMPTY.check(await read_body(request, optional=True))
    store = request.app[STORE]
    token = await store.end_grace(client_id, found.username, owner=found.username)
    return await propagated(request, await token_record(request, token))


@routes.delete(BASE + "/tokens/{client_id}")
async def delete_my_token(request: web.Request) -> web.Response:
    found = await own_caller(request)
    client_id = client_id_of(request)
    await request.app[STORE].delete_tokens([client_id], found.username, owner=found.username)
    return await propagated_no_content(request)
