"""The OpenAPI 3.1 document of ``/admin/v1``, built from the running config.

Built rather than kept as a static file so that it names this deployment's
APIs (access map keys), expiry choices and limits exactly; a schemathesis run
against it is part of the tests. ``GET /admin/v1/openapi.json`` needs no
credential: it holds no secret and describes only what the code does.
"""

from __future__ import annotations

from aiohttp import web

from admin import schema
from admin.openapi_paths import Json, paths, pattern, ref
from sidecar.config import Config
from sidecar.policy import LEVELS
from sidecar.records import ROLE_NAME, TOKEN_STATUSES, USERNAME
from sidecar.tokenformat import CLIENT_ID

DOCUMENT = web.AppKey("openapi", dict)

STRING = {"type": "string"}
NULLABLE_STRING = {"type": ["string", "null"]}
TIMESTAMP = {"type": "string", "format": "date-time"}
NULLABLE_TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}


def _object(properties: Json, required: list[str] | None = None) -> Json:
    body: Json = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        body["required"] = required
    return body


def _components(config: Config) -> Json:
    apis = [api.name for api in config.apis]
    access = {
        "type": "object",
        "propertyNames": {"enum": [*apis, "admin", "*"]},
        "additionalProperties": {"enum": list(LEVELS)},
        "description": "API name (or admin, or * for every API) to access level",
    }
    months = {"enum": list(config.tokens.expiry_months_choices)}
    token_fields: Json = {
        "client_id": STRING,
        "user": STRING,
        "description": STRING,
        "role": NULLABLE_STRING,
        "access": ref("Access"),
        "status": {"enum": list(TOKEN_STATUSES)},
        "created_at": TIMESTAMP,
        "created_by": STRING,
        "expires_at": TIMESTAMP,
        "last_used_at": NULLABLE_TIMESTAMP,
        "revoked_at": NULLABLE_TIMESTAMP,
        "revoked_by": NULLABLE_STRING,
        "regenerated_at": NULLABLE_TIMESTAMP,
    }
    user_fields: Json = {
        "username": STRING,
        "display_name": STRING,
        "email": STRING,
        "active": {"type": "boolean"},
        "created_at": TIMESTAMP,
    }
    description = {"type": "string", "maxLength": schema.MAX_DESCRIPTION}
    role_ref = {"type": ["string", "null"], "pattern": f"^{ROLE_NAME.pattern}$"}
    username = pattern(USERNAME.pattern)
    ids = {
        "type": "array",
        "items": pattern(CLIENT_ID.pattern),
        "minItems": 1,
        "maxItems": schema.MAX_BULK,
    }
    return {
        "Access": access,
        "Error": _object(
            {"error": STRING, "message": STRING, "field": STRING}, ["error", "message"]
        ),
        "Token": _object(token_fields, list(token_fields)),
        "IssuedToken": _object(
            {
                **token_fields,
                "client_secret": {"type": "string", "description": "shown once"},
                "token": {"type": "string", "description": "the bearer token, shown once"},
            },
            [*token_fields, "client_secret", "token"],
        ),
        "RegeneratedToken": _object(
            {
                **token_fields,
                "client_secret": {"type": "string", "description": "shown once"},
                "token": {"type": "string", "description": "the bearer token, shown once"},
                "grace_until": {
                    **TIMESTAMP,
                    "description": "until when the old secret still works; absent without a grace",
                },
            },
            [*token_fields, "client_secret", "token"],
        ),
        "TokenList": _page("Token"),
        "TokenCreate": _object(
            {
                "user": username,
                "description": description,
                "role": role_ref,
                "access": ref("Access"),
                "expires_in_months": months,
                "expires_at": TIMESTAMP,
            },
            ["user"],
        ),
        "OwnTokenCreate": _object(
            {
                "description": description,
                "access": ref("Access"),
                "expires_in_months": months,
                "expires_at": TIMESTAMP,
            }
        ),
        "TokenPatch": _object(
            {
                "user": username,
                "description": description,
                "role": role_ref,
                "access": ref("Access"),
                "expires_at": TIMESTAMP,
            }
        ),
        "Regenerate": _object(
            {
                "expires_in_months": months,
                "expires_at": TIMESTAMP,
                "grace_seconds": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": config.tokens.max_grace_seconds,
                },
            }
        ),
        "Empty": _object({}),
        "BulkIds": _object({"client_ids": ids}, ["client_ids"]),
        "BulkRevoke": {
            "oneOf": [
                _object({"client_ids": ids}, ["client_ids"]),
                _object({"user": username}, ["user"]),
            ]
        },
        "Deleted": _object({"deleted": {"type": "integer", "minimum": 0}}, ["deleted"]),
        "Revoked": _object({"revoked": {"type": "integer", "minimum": 0}}, ["revoked"]),
        "HistoryEntry": _object(
            {
                "at": TIMESTAMP,
                "actor": STRING,
                "action": {"enum": ["created", "updated", "regenerated", "revoked", "deleted"]},
                "changes": _changes(),
            },
            ["at", "actor", "action", "changes"],
        ),
        "History": _items("HistoryEntry"),
        "AuditEntry": _object(
            {
                "at": TIMESTAMP,
                "actor": STRING,
                "action": {"enum": ["created", "updated", "regenerated", "revoked", "deleted"]},
                "kind": {"enum": ["token", "user", "role"]},
                "target": STRING,
                "changes": _changes(),
            },
            ["at", "actor", "action", "kind", "target", "changes"],
        ),
        "Audit": _items("AuditEntry"),
        "User": _object(user_fields, list(user_fields)),
        "UserList": _page("User"),
        "UserCreate": _object(
            {
                "username": username,
                "display_name": {"type": "string", "maxLength": schema.MAX_DISPLAY_NAME},
                "email": {"type": "string", "maxLength": schema.MAX_EMAIL},
                "active": {"type": "boolean"},
            },
            ["username"],
        ),
        "UserPatch": _object(
            {
                "display_name": {"type": "string", "maxLength": schema.MAX_DISPLAY_NAME},
                "email": {"type": "string", "maxLength": schema.MAX_EMAIL},
                "active": {"type": "boolean"},
            }
        ),
        "Role": _object(
            {"name": STRING, "description": STRING, "access": ref("Access")},
            ["name", "description", "access"],
        ),
        "RolePut": _object({"description": description, "access": ref("Access")}),
        "RoleList": _items("Role"),
        "Api": _object(
            {"name": STRING, "prefix": STRING, "description": STRING},
            ["name", "prefix", "description"],
        ),
        "ApiList": _items("Api"),
        "Me": _object(
            {
                "user": ref("User"),
                "token": ref("Token"),
                "levels": {"type": "object", "additionalProperties": {"enum": list(LEVELS)}},
            },
            ["user", "token", "levels"],
        ),
    }


def _changes() -> Json:
    return {
        "type": "object",
        "description": "{field: [old, new]}; never a secret or a hash",
        "additionalProperties": {"type": "array", "minItems": 2, "maxItems": 2},
    }


def _items(name: str) -> Json:
    return _object({"items": {"type": "array", "items": ref(name)}}, ["items"])


def _page(name: str) -> Json:
    return _object(
        {
            "items": {"type": "array", "items": ref(name)},
            "total": {"type": "integer", "minimum": 0},
            "limit": {"type": "integer", "minimum": 1},
            "offset": {"type": "integer", "minimum": 0},
        },
        ["items", "total", "limit", "offset"],
    )


def document(config: Config) -> Json:
    apis = [api.name for api in config.apis]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Keystile admin API",
            "version": "1",
            "description": "Manage API credentials: tokens, users, roles. See README.",
        },
        "paths": paths(apis),
        "components": {
            "schemas": _components(config),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic", "description": "client_id:secret"},
                "clientId": {
                    "type": "apiKey",
                    "in": "header",
                    "name": config.headers.credential_client_id,
                },
                "clientSecret": {
                    "type": "apiKey",
                    "in": "header",
                    "name": config.headers.credential_client_secret,
                },
            },
        },
        "security": [{"bearer": []}, {"basic": []}, {"clientId": [], "clientSecret": []}],
    }


async def view(request: web.Request) -> web.Response:
    return web.json_response(request.app[DOCUMENT])
