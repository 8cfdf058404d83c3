"""``/admin/v1/tokens``: the whole life of a token, for admin callers (spec section 4)."""

from __future__ import annotations

from aiohttp import web

from admin import queries, schema
from admin.errors import BadRequest, NotFound
from admin.state import RULES, SERVICE, STORE
from admin.views_shared import (
    admin_caller,
    answer,
    client_id_of,
    issued_view,
    listed,
    propagated,
    propagated_no_content,
    read_body,
    token_page,
    token_record,
    token_view,
)
from sidecar import clock
from sidecar.store.changes import Missing

routes = web.RouteTableDef()
BASE = "/admin/v1/tokens"


@routes.post(BASE)
async def create_token(request: web.Request) -> web.Response:
    caller = await admin_caller(request)
    draft = schema.new_token(await read_body(request), request.app[RULES], clock.now())
    issued = await request.app[SERVICE].create_token(draft, caller.username)
    return answer(issued_view(issued), status=201)


@routes.get(BASE)
async def list_tokens(request: web.Request) -> web.Response:
    await admin_caller(request)
    query = queries.token_query(request.query, request.app[RULES].access_keys - {"*"})
    return answer(await token_page(request, query))


@routes.post(f"{BASE}/bulk-delete")
async def bulk_delete(request: web.Request) -> web.Response:
    caller = await admin_caller(request)
    client_ids = schema.client_id_list(await read_body(request))
    try:
        count = await request.app[STORE].delete_tokens(client_ids, caller.username)
    except Missing as exc:
        raise _missing_in_list(client_ids, exc.target) from None
    return await propagated(request, {"deleted": count})


@routes.post(f"{BASE}/bulk-revoke")
async def bulk_revoke(request: web.Request) -> web.Response:
    caller = await admin_caller(request)
    target = schema.bulk_revoke_target(await read_body(request))
    store = request.app[STORE]
    if isinstance(target, str):
        revoked = await store.revoke_user_tokens(target, caller.username)
        return await propagated(request, {"revoked": len(revoked)})
    try:
        revoked = await store.revoke_tokens(target, caller.username)
    except Missing as exc:
        raise _missing_in_list(target, exc.target) from None
    return await propagated(request, {"revoked": len(revoked)})


def _missing_in_list(client_ids: list[str], client_id: str) -> BadRequest:
    index = client_ids.index(client_id)
    message = "no token has this client_id; nothing was changed"
    return BadRequest(message, field=f"client_ids.{index}")


@routes.get(BASE + "/{client_id}")
async def get_token(request: web.Request) -> web.Response:
    await admin_caller(request)
    token = await request.app[STORE].get_token(client_id_of(request))
    if token is None:
        raise NotFound("no token has this client_id")
    return answer(await token_record(request, token))


@routes.patch(BASE + "/{client_id}")
async def patch_token(request: web.Request) -> web.Response:
    caller = await admin_caller(request)
    client_id = client_id_of(request)
    changes = schema.token_changes(await read_body(request), request.app[RULES], clock.now())
    token = await request.app[STORE].patch_token(client_id, changes, caller.username)
    return answer(token_view(token))


@routes.delete(BASE + "/{client_id}")
async def delete_token(request: web.Request) -> web.Response:
    caller = await admin_caller(request)
    await request.app[STORE].delete_tokens([client_id_of(request)], caller.username)
    return await propagated_no_content(request)


@routes.post(BASE + "/{client_id}/regenerate")
async def regenerate_token(request: web.Request) -> web.Response:
    caller = await admin_caller(request)
    client_id = client_id_of(request)
    body = await read_body(request, optional=True)
    change = schema.regeneration(body, request.app[RULES], clock.now())
    issued = await request.app[SERVICE].regenerate(client_id, change, caller.username)
    until = issued.token.grace_until
    # The record's grace block as GET shows it, from its first moment: no old-secret use yet.
    fresh: dict[str, object] = {"until": until, "old_secret_uses": 0, "last_old_use_at": None}
    fresh["clients"] = []
    grace = {"grace_until": until, "grace": fresh} if until else {"grace": None}
    return await propagated(request, {**issued_view(issued), **grace})


@routes.post(BASE + "/{client_id}/revoke")
async def revoke_token(request: web.Request) -> web.Response:
    caller = await admin_caller(request)
    client_id = client_id_of(request)
    schema.EMPTY.check(await read_body(request, optional=True))
    (token,) = await request.app[STORE].revoke_tokens([client_id], caller.username)
    return await propagated(request, token_view(token))


@routes.post(BASE + "/{client_id}/end-grace")
async def end_grace(request: web.Request) -> web.Response:
    """The old secret of the last regeneration stops working now, on every replica."""
    caller = await admin_caller(request)
    client_id = client_id_of(request)
    schema.EMPTY.check(await read_body(request, optional=True))
    token = await request.app[STORE].end_grace(client_id, caller.username)
    return await propagated(request, await token_record(request, token))


@routes.get(BASE + "/{client_id}/history")
async def token_history(request: web.Request) -> web.Response:
    await admin_caller(request)
    entries = await request.app[STORE].history(client_id_of(request))
    return answer(listed([_history_entry(entry) for entry in entries]))


def _history_entry(entry: dict[str, object]) -> dict[str, object]:
    return {name: entry[name] for name in ("at", "actor", "action", "changes")}
