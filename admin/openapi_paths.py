"""The ``paths`` of the admin API's OpenAPI document, derived from the routes it serves.

``OPERATIONS`` says, for each view, what the document adds to its route: a
summary, the answer's schema, the body's schema (declared in
``admin.schema.BODIES``), the query parameters (declared in ``admin.queries``)
and the errors beyond the ones every call can give. The methods and paths come
from the app's router, so the document lists exactly what is served; a route
under ``/admin/v1`` whose view is missing here stops the app from being built.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp.web_urldispatcher import AbstractRoute

from admin import queries, views_advice, views_me, views_people, views_replicas, views_tokens
from admin.fields import pattern
from admin.openapi_answers import STRING, ref
from admin.queries import Param
from sidecar.records import ROLE_NAME, USERNAME
from sidecar.tokenformat import CLIENT_ID

Json = dict[str, Any]
View = Callable[..., Any]

BASE = "/admin/v1"
#: Every authenticated call: a malformed credential header is a 400, as on the proxy.
AUTH_ERRORS = (400, 401, 403, 503)
BODY_ERRORS = (400, 413, 415)

ERRORS = {
    400: "Invalid request: the body, a query parameter, a record it names, or the credential",
    401: "No valid credential",
    403: "The credential's level on the admin API does not allow this",
    404: "No such record (or not one the caller may see)",
    409: "The change conflicts with the stored state",
    413: "The body is larger than admin.max_body_bytes",
    415: "The body is not JSON",
    503: (
        "The credential store cannot be reached (unavailable), or a change was applied"
        " but redis.durability did not confirm it (not_durable: read it back before retrying)"
    ),
}

#: A propagating 204's header (admin/views_shared.py, docs/choices.md).
PROPAGATION_HEADER = {
    "Keystile-Propagation": {
        "description": "the propagation object of the other changes, as compact JSON",
        "schema": STRING,
    }
}

SHOWN_ONCE = "the secret is in this answer only (Cache-Control: no-store)"

#: Each path placeholder's schema: what ``views_shared.client_id_of`` and the others accept.
PATH_PARAMS: Mapping[str, tuple[Json, str]] = {
    "client_id": (pattern(CLIENT_ID.pattern), ""),
    "username": (pattern(USERNAME.pattern), "case-insensitive"),
    "name": (pattern(ROLE_NAME.pattern), ""),
}


def _path_params(path: str) -> list[Json]:
    params = []
    for name in re.findall(r"\{(\w+)\}", path):
        schema, description = PATH_PARAMS[name]
        described = {"description": description} if description else {}
        params.append({"name": name, "in": "path", "schema": schema, "required": True, **described})
    return params


class Documented(Protocol):
    def json(self, path: str, apis: Sequence[str]) -> Json: ...


@dataclass(frozen=True)
class Fixed:
    """An operation documented as written (the document's own route)."""

    operation: Json

    def json(self, path: str, apis: Sequence[str]) -> Json:
        return self.operation


@dataclass(frozen=True)
class Operation:
    """What the document says of one route beyond its method and path."""

    summary: str
    ok: int
    answer: str | None
    body: str | None = None
    body_required: bool = True
    query: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()
    secret: bool = False
    created_too: bool = False
    #: A 204 that waits for the replicas and says so in ``Keystile-Propagation``.
    propagates: bool = False

    def json(self, path: str, apis: Sequence[str]) -> Json:
        params = [*_path_params(path), *(param.json(apis) for param in self.query)]
        operation: Json = {"summary": self.summary, "responses": self._responses(path)}
        if params:
            operation["parameters"] = params
        if self.body:
            content = {"application/json": {"schema": ref(self.body)}}
            operation["requestBody"] = {"required": self.body_required, "content": content}
        return operation

    def _responses(self, path: str) -> Json:
        responses: Json = {}
        if self.answer is None:
            responses[str(self.ok)] = {"description": "done, no body"}
            if self.propagates:
                responses[str(self.ok)]["headers"] = PROPAGATION_HEADER
        else:
            content = {"application/json": {"schema": ref(self.answer)}}
            responses[str(self.ok)] = {
                "description": SHOWN_ONCE if self.secret else "OK",
                "content": content,
            }
            if self.created_too:
                responses["201"] = {"description": "created", "content": content}
        for code in sorted(self._error_codes(path)):
            content = {"application/json": {"schema": ref("Error")}}
            responses[str(code)] = {"description": ERRORS[code], "content": content}
        return responses

    def _error_codes(self, path: str) -> set[int]:
        codes = set(self.errors) | set(AUTH_ERRORS) | (set(BODY_ERRORS) if self.body else set())
        codes |= {400} if self.query else set()
        codes |= {404} if "{" in path else set()
        return codes


#: Each admin view's operation.
OPERATIONS: dict[View, Documented] = {
    views_tokens.create_token: Operation(
        "Create a token", 201, "IssuedToken", body="TokenCreate", secret=True
    ),
    views_tokens.list_tokens: Operation(
        "List and search tokens", 200, "TokenList", query=queries.TOKEN_PARAMS
    ),
    views_tokens.bulk_delete: Operation(
        "Delete many tokens, all or none", 200, "Deleted", body="BulkIds"
    ),
    views_tokens.bulk_revoke: Operation(
        "Revoke tokens by ids or by user", 200, "Revoked", body="BulkRevoke"
    ),
    views_tokens.get_token: Operation(
        "One token, with who still uses an old secret during a grace", 200, "TokenRecord"
    ),
    views_tokens.patch_token: Operation("Change a token", 200, "Token", body="TokenPatch"),
    views_tokens.delete_token: Operation("Delete a token for good", 204, None, propagates=True),
    views_tokens.regenerate_token: Operation(
        "New secret, same client_id",
        200,
        "RegeneratedToken",
        body="Regenerate",
        body_required=False,
        errors=(409,),
        secret=True,
    ),
    views_tokens.revoke_token: Operation(
        "Revoke a token for good", 200, "PropagatedToken", body="Empty", body_required=False
    ),
    views_tokens.end_grace: Operation(
        "End a regeneration's grace period now: the old secret stops working",
        200,
        "PropagatedTokenRecord",
        body="Empty",
        body_required=False,
        errors=(409,),
    ),
    views_tokens.token_history: Operation(
        "Every change of a token, kept after deletion", 200, "History"
    ),
    views_people.create_user: Operation(
        "Create a user", 201, "User", body="UserCreate", errors=(409,)
    ),
    views_people.list_users: Operation(
        "List and search users", 200, "UserList", query=queries.USER_PARAMS
    ),
    views_people.get_user: Operation("One user", 200, "User"),
    views_people.patch_user: Operation("Change a user", 200, "ChangedUser", body="UserPatch"),
    views_people.delete_user: Operation("Delete a user and its tokens", 204, None, propagates=True),
    views_people.list_roles: Operation("Every role", 200, "RoleList"),
    views_people.put_role: Operation(
        "Create (201) or replace (200) a role",
        200,
        "PropagatedRole",
        body="RolePut",
        created_too=True,
    ),
    views_people.get_role: Operation("One role", 200, "Role"),
    views_people.delete_role: Operation(
        "Delete a role no token uses", 204, None, errors=(409,), propagates=True
    ),
    views_people.list_apis: Operation("The configured APIs", 200, "ApiList"),
    views_people.audit: Operation(
        "The global change log, newest first", 200, "Audit", query=queries.AUDIT_PARAMS
    ),
    views_me.me: Operation("The caller: user, token, levels", 200, "Me", errors=(404,)),
    views_me.my_tokens: Operation(
        "The caller's own user's tokens", 200, "TokenList", query=queries.TOKEN_PARAMS
    ),
    views_me.create_my_token: Operation(
        "Create a token for the caller's user, within the caller's access",
        201,
        "IssuedToken",
        body="OwnTokenCreate",
        secret=True,
    ),
    views_me.revoke_my_token: Operation(
        "Revoke one of the caller's user's tokens",
        200,
        "PropagatedToken",
        body="Empty",
        body_required=False,
    ),
    views_me.delete_my_token: Operation(
        "Delete one of the caller's user's tokens", 204, None, propagates=True
    ),
    # Acknowledged revocation (spec section 10).
    views_replicas.list_replicas: Operation(
        "The live replicas: the generation each applied, and its lag", 200, "ReplicaList"
    ),
    # -- least privilege from observed use (admin/views_advice.py) --
    views_advice.token_usage: Operation(
        "A token's uses per API and method class, per UTC day",
        200,
        "TokenUsage",
        query=queries.WINDOW_PARAMS,
    ),
    views_advice.token_advice: Operation(
        "The tightest access map that allowed every use in the window",
        200,
        "TokenAdvice",
        query=queries.WINDOW_PARAMS,
    ),
    views_advice.my_token_usage: Operation(
        "The uses of one of the caller's user's tokens",
        200,
        "TokenUsage",
        query=queries.WINDOW_PARAMS,
    ),
    views_advice.my_token_advice: Operation(
        "The advice for one of the caller's user's tokens",
        200,
        "TokenAdvice",
        query=queries.WINDOW_PARAMS,
    ),
    views_advice.apply_advice: Operation(
        "Apply the advice as an ordinary, recorded edit of access",
        200,
        "Token",
        body="AdviceApply",
        body_required=False,
        errors=(409,),
    ),
    views_me.end_my_grace: Operation(
        "End the grace period of one of the caller's user's tokens",
        200,
        "PropagatedTokenRecord",
        body="Empty",
        body_required=False,
        errors=(409,),
    ),
}


def paths(
    routes: Iterable[AbstractRoute], apis: Sequence[str], operations: Mapping[View, Documented]
) -> Json:
    """Every route served under ``/admin/v1``, documented by the operation of its view."""
    documented: Json = {}
    for route in routes:
        path = route.resource.canonical if route.resource else ""
        if route.method == "HEAD" or not path.startswith(BASE):
            continue
        operation = operations.get(route.handler)
        if operation is None:
            raise LookupError(f"{route.method} {path} is served but not in the OpenAPI document")
        documented.setdefault(path, {})[route.method.lower()] = operation.json(path, apis)
    return documented
