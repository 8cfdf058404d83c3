"""The ``paths`` of the admin API's OpenAPI document: every operation, its body,
its answers and every error it can give (``admin.openapi`` holds the schemas
and puts the document together)."""

from __future__ import annotations

from typing import Any

from admin import queries
from sidecar.records import ROLE_NAME, TOKEN_STATUSES, USERNAME
from sidecar.tokenformat import CLIENT_ID

Json = dict[str, Any]

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


def ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def pattern(regex: str) -> Json:
    return {"type": "string", "pattern": f"^{regex}$"}


def _param(name: str, where: str, schema: Json, description: str = "") -> Json:
    param: Json = {"name": name, "in": where, "schema": schema, "required": where == "path"}
    if description:
        param["description"] = description
    return param


CLIENT_ID_PARAM = _param("client_id", "path", pattern(CLIENT_ID.pattern))
USERNAME_PARAM = _param("username", "path", pattern(USERNAME.pattern), "case-insensitive")
ROLE_PARAM = _param("name", "path", pattern(ROLE_NAME.pattern))


def _order(columns: tuple[str, ...]) -> Json:
    column = "-?(" + "|".join(columns) + ")"
    return _param(
        "order",
        "query",
        {"type": "string", "pattern": f"^{column}(,{column})*$"},
        "comma list of columns, '-' for descending; unknown column: 400",
    )


PAGE_PARAMS = [
    _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": queries.MAX_LIMIT}),
    _param("offset", "query", {"type": "integer", "minimum": 0, "maximum": 10**9}),
]
Q_PARAM = _param(
    "q", "query", {"type": "string", "maxLength": 200}, "case-insensitive partial match"
)


#: One status, or a comma list of them (``active,expired`` hides revoked tokens).
_ONE_STATUS = f"({'|'.join(TOKEN_STATUSES)})"
STATUS_LIST: Json = pattern(f"{_ONE_STATUS}(,{_ONE_STATUS})*")


def _token_params(apis: list[str]) -> list[Json]:
    return [
        Q_PARAM,
        _param("user", "query", {"type": "string"}),
        _param("status", "query", STATUS_LIST, "one status or a comma list of them"),
        _param("role", "query", {"type": "string"}),
        _param("api", "query", {"enum": [*apis, "admin"]}, "effective level above none"),
        _order(queries.TOKEN_COLUMNS),
        *PAGE_PARAMS,
    ]


def _op(
    summary: str,
    ok: int,
    answer: str | None,
    *,
    body: str | None = None,
    body_required: bool = True,
    params: list[Json] | None = None,
    errors: tuple[int, ...] = (),
    secret: bool = False,
    created_too: bool = False,
) -> Json:
    responses: dict[str, Any] = {}
    description = "the secret is in this answer only (Cache-Control: no-store)" if secret else "OK"
    if answer is None:
        responses[str(ok)] = {"description": "done, no body"}
    else:
        content = {"application/json": {"schema": ref(answer)}}
        responses[str(ok)] = {"description": description, "content": content}
        if created_too:
            responses["201"] = {"description": "created", "content": content}
    codes = set(errors) | set(AUTH_ERRORS) | (set(BODY_ERRORS) if body else set())
    if params:
        codes |= {400} if any(p["in"] == "query" for p in params) else set()
        codes |= {404} if any(p["in"] == "path" for p in params) else set()
    for code in sorted(codes):
        content = {"application/json": {"schema": ref("Error")}}
        responses[str(code)] = {"description": ERRORS[code], "content": content}
    operation: Json = {"summary": summary, "responses": responses}
    if params:
        operation["parameters"] = params
    if body:
        operation["requestBody"] = {
            "required": body_required,
            "content": {"application/json": {"schema": ref(body)}},
        }
    return operation


def paths(apis: list[str]) -> Json:
    token = [CLIENT_ID_PARAM]
    return {
        f"{BASE}/tokens": {
            "post": _op("Create a token", 201, "IssuedToken", body="TokenCreate", secret=True),
            "get": _op("List and search tokens", 200, "TokenList", params=_token_params(apis)),
        },
        f"{BASE}/tokens/bulk-delete": {
            "post": _op("Delete many tokens, all or none", 200, "Deleted", body="BulkIds"),
        },
        f"{BASE}/tokens/bulk-revoke": {
            "post": _op("Revoke tokens by ids or by user", 200, "Revoked", body="BulkRevoke"),
        },
        f"{BASE}/tokens/{{client_id}}": {
            "get": _op("One token", 200, "Token", params=token),
            "patch": _op("Change a token", 200, "Token", body="TokenPatch", params=token),
            "delete": _op("Delete a token for good", 204, None, params=token),
        },
        f"{BASE}/tokens/{{client_id}}/regenerate": {
            "post": _op(
                "New secret, same client_id",
                200,
                "RegeneratedToken",
                body="Regenerate",
                body_required=False,
                params=token,
                errors=(409,),
                secret=True,
            ),
        },
        f"{BASE}/tokens/{{client_id}}/revoke": {
            "post": _op(
                "Revoke a token for good",
                200,
                "Token",
                body="Empty",
                body_required=False,
                params=token,
            ),
        },
        f"{BASE}/tokens/{{client_id}}/history": {
            "get": _op(
                "Every change of a token, kept after deletion", 200, "History", params=token
            ),
        },
        f"{BASE}/users": {
            "post": _op("Create a user", 201, "User", body="UserCreate", errors=(409,)),
            "get": _op(
                "List and search users",
                200,
                "UserList",
                params=[Q_PARAM, _order(queries.USER_COLUMNS), *PAGE_PARAMS],
            ),
        },
        f"{BASE}/users/{{username}}": {
            "get": _op("One user", 200, "User", params=[USERNAME_PARAM]),
            "patch": _op("Change a user", 200, "User", body="UserPatch", params=[USERNAME_PARAM]),
            "delete": _op("Delete a user and its tokens", 204, None, params=[USERNAME_PARAM]),
        },
        f"{BASE}/roles": {"get": _op("Every role", 200, "RoleList")},
        f"{BASE}/roles/{{name}}": {
            "put": _op(
                "Create (201) or replace (200) a role",
                200,
                "Role",
                body="RolePut",
                params=[ROLE_PARAM],
                created_too=True,
            ),
            "get": _op("One role", 200, "Role", params=[ROLE_PARAM]),
            "delete": _op(
                "Delete a role no token uses", 204, None, params=[ROLE_PARAM], errors=(409,)
            ),
        },
        f"{BASE}/apis": {"get": _op("The configured APIs", 200, "ApiList")},
        f"{BASE}/openapi.json": {
            "get": {
                "summary": "This document; no credential needed",
                "security": [],
                "responses": {
                    "200": {
                        "description": "the OpenAPI 3.1 document",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        f"{BASE}/audit": {
            "get": _op(
                "The global change log, newest first",
                200,
                "Audit",
                params=[
                    _param("since", "query", {"type": "string", "format": "date-time"}),
                    _param(
                        "limit",
                        "query",
                        {"type": "integer", "minimum": 1, "maximum": queries.MAX_LIMIT},
                    ),
                ],
            ),
        },
        f"{BASE}/me": {"get": _op("The caller: user, token, levels", 200, "Me", errors=(404,))},
        f"{BASE}/me/tokens": {
            "get": _op(
                "The caller's own user's tokens", 200, "TokenList", params=_token_params(apis)
            ),
            "post": _op(
                "Create a token for the caller's user, within the caller's access",
                201,
                "IssuedToken",
                body="OwnTokenCreate",
                secret=True,
            ),
        },
        f"{BASE}/me/tokens/{{client_id}}/revoke": {
            "post": _op(
                "Revoke one of the caller's user's tokens",
                200,
                "Token",
                body="Empty",
                body_required=False,
                params=token,
            ),
        },
        f"{BASE}/me/tokens/{{client_id}}": {
            "delete": _op("Delete one of the caller's user's tokens", 204, None, params=token),
        },
    }
