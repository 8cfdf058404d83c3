"""``/admin/v1`` users, roles, APIs and the audit log (spec section 4)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from admin import queries, schema
from admin.errors import NotFound
from admin.state import CONFIG, RULES, STORE
from admin.views_shared import (
    admin_caller,
    answer,
    listed,
    propagated,
    propagated_no_content,
    read_body,
)
from sidecar import clock
from sidecar.records import ROLE_NAME, USERNAME, Role, User

routes = web.RouteTableDef()
BASE = "/admin/v1"


def _username_of(request: web.Request) -> str:
    name = request.match_info["username"]
    if not USERNAME.fullmatch(name):
        raise NotFound("no user has this name")
    return name


def _role_of(request: web.Request) -> str:
    name = request.match_info["name"]
    if not ROLE_NAME.fullmatch(name):
        raise NotFound("no role has this name")
    return name


@routes.post(f"{BASE}/users")
async def create_user(request: web.Request) -> web.Response:
    caller = await admin_caller(request)
    fields = schema.new_user(await read_body(request))
    user = User(**fields, created_at=clock.to_rfc3339(clock.now()))
    stored = await request.app[STORE].create_user(user, caller.username)
    return answer(stored.public(), status=201)


@routes.get(f"{BASE}/users")
async def list_users(request: web.Request) -> web.Response:
    await admin_caller(request)
    query = queries.user_query(request.query)
    users = [u.public() for u in await request.app[STORE].users() if _user_matches(u, query.q)]
    for column, descending in reversed((*query.order, ("username", False))):
        users.sort(key=_user_key(column), reverse=descending)
    start, limit = query.page.offset, query.page.limit
    page = {"total": len(users), "limit": limit, "offset": start}
    return answer({"items": users[start : start + limit], **page})


def _user_matches(user: User, q: str) -> bool:
    return not q or any(
        q in value.lower() for value in (user.username, user.display_name, user.email)
    )


def _user_key(column: str) -> Callable[[dict[str, Any]], Any]:
    def key(user: dict[str, Any]) -> Any:
        value = user[column]
        return value.lower() if isinstance(value, str) else value

    return key


@routes.get(BASE + "/users/{username}")
async def get_user(request: web.Request) -> web.Response:
    await admin_caller(request)
    user = await request.app[STORE].get_user(_username_of(request))
    if user is None:
        raise NotFound("no user has this name")
    return answer(user.public())


@routes.patch(BASE + "/users/{username}")
async def patch_user(request: web.Request) -> web.Response:
    caller = await admin_caller(request)
    name = _username_of(request)
    changes = schema.user_changes(await read_body(request))
    user = await request.app[STORE].patch_user(name, changes, caller.username)
    if changes.get("active") is False:  # its tokens are refused: on every replica first
        return await propagated(request, user.public())
    return answer(user.public())


@routes.delete(BASE + "/users/{username}")
async def delete_user(request: web.Request) -> web.Response:
    caller = await admin_caller(request)
    await request.app[STORE].delete_user(_username_of(request), caller.username)
    return await propagated_no_content(request)


@routes.get(f"{BASE}/roles")
async def list_roles(request: web.Request) -> web.Response:
    await admin_caller(request)
    return answer(listed([role.public() for role in await request.app[STORE].roles()]))


@routes.put(BASE + "/roles/{name}")
async def put_role(request: web.Request) -> web.Response:
    caller = await admin_caller(request)
    name = request.match_info["name"]
    description, access = schema.role_body(name, await read_body(request), request.app[RULES])
    role = Role(name, description, access)
    created = await request.app[STORE].put_role(role, caller.username)
    return await propagated(request, role.public(), status=201 if created else 200)


@routes.get(BASE + "/roles/{name}")
async def get_role(request: web.Request) -> web.Response:
    await admin_caller(request)
    role = await request.app[STORE].get_role(_role_of(request))
    if role is None:
        raise NotFound("no role has this name")
    return answer(role.public())


@routes.delete(BASE + "/roles/{name}")
async def delete_role(request: web.Request) -> web.Response:
    caller = await admin_caller(request)
    await request.app[STORE].delete_role(_role_of(request), caller.username)
    return await propagated_no_content(request)


@routes.get(f"{BASE}/apis")
async def list_apis(request: web.Request) -> web.Response:
    await admin_caller(request)
    apis = request.app[CONFIG].apis
    items = [{"name": a.name, "prefix": a.prefix, "description": a.description} for a in apis]
    return answer(listed(items))


@routes.get(f"{BASE}/audit")
async def audit(request: web.Request) -> web.Response:
    await admin_caller(request)
    query = queries.audit_query(request.query)
    entries = await request.app[STORE].audit(query.since_ms, query.limit)
    return answer(listed(entries))
