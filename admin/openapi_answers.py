"""The schemas of what the admin API answers, for its OpenAPI document.

The request bodies are not here: each is declared once in ``admin.schema``,
which both checks it and describes it. These are the shapes of the JSON views
(``Token.public``, ``User.public``, the lists, the history), kept beside one
another so that a change to a view has one place to be documented.
"""

from __future__ import annotations

from typing import Any

from sidecar.policy import LEVELS
from sidecar.records import TOKEN_STATUSES

Json = dict[str, Any]

STRING = {"type": "string"}
NULLABLE_STRING = {"type": ["string", "null"]}
TIMESTAMP = {"type": "string", "format": "date-time"}
NULLABLE_TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}
COUNT = {"type": "integer", "minimum": 0}
ACTIONS = {"enum": ["created", "updated", "regenerated", "revoked", "deleted"]}
CHANGES = {
    "type": "object",
    "description": "{field: [old, new]}; never a secret or a hash",
    "additionalProperties": {"type": "array", "minItems": 2, "maxItems": 2},
}


def ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


#: Properties present only sometimes, wherever they appear.
OPTIONAL = frozenset({"quarantined_at"})


def closed(properties: Json, required: list[str] | None = None) -> Json:
    """An object with exactly these properties (``required``: all of them unless given,
    never one of ``OPTIONAL``)."""
    body: Json = {"type": "object", "properties": properties, "additionalProperties": False}
    needed = [k for k in (properties if required is None else required) if k not in OPTIONAL]
    if needed:
        body["required"] = needed
    return body


#: What ``Token.public`` answers.
TOKEN = {
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
    "quarantined_at": {**TIMESTAMP, "description": "only while a leak report keeps it quarantined"},
}
#: What an answer that carries a secret adds to a token (``views_shared.issued_view``).
ISSUED = {
    **TOKEN,
    "client_secret": {"type": "string", "description": "shown once"},
    "token": {"type": "string", "description": "the bearer token, shown once"},
}
GRACE_UNTIL = {
    **TIMESTAMP,
    "description": "until when the old secret still works; absent without a grace",
}
#: Who used a regeneration's old secret during its grace (``store.graceuses.read``).
GRACE_CLIENT = {
    "address": {**NULLABLE_STRING, "description": "null for the clients beyond the bound"},
    "user_agent": {**NULLABLE_STRING, "description": "cut at 200 characters; null as address"},
    "uses": COUNT,
    "last_used_at": NULLABLE_TIMESTAMP,
}
GRACE = {
    "until": TIMESTAMP,
    "old_secret_uses": COUNT,
    "last_old_use_at": NULLABLE_TIMESTAMP,
    "clients": {"type": "array", "items": ref("GraceClient")},
}
#: A record's grace block: null without an open grace period.
OPEN_GRACE = {"oneOf": [ref("Grace"), {"type": "null"}]}
#: What ``User.public`` answers.
USER = {
    "username": STRING,
    "display_name": STRING,
    "email": STRING,
    "active": {"type": "boolean"},
    "created_at": TIMESTAMP,
}


def _items(name: str) -> Json:
    return closed({"items": {"type": "array", "items": ref(name)}})


def _page(name: str) -> Json:
    return closed(
        {
            "items": {"type": "array", "items": ref(name)},
            "total": COUNT,
            "limit": {"type": "integer", "minimum": 1},
            "offset": COUNT,
        }
    )


def _tokens() -> Json:
    return {
        "Token": closed(TOKEN),
        "IssuedToken": closed(ISSUED),
        "RegeneratedToken": closed(
            {**ISSUED, "grace_until": GRACE_UNTIL, "grace": OPEN_GRACE}, [*ISSUED, "grace"]
        ),
        "TokenList": _page("Token"),
        "TokenRecord": closed({**TOKEN, "grace": OPEN_GRACE}),
        "Grace": closed(GRACE),
        "GraceClient": closed(GRACE_CLIENT),
        "Deleted": closed({"deleted": COUNT}),
        "Revoked": closed({"revoked": COUNT}),
        "HistoryEntry": closed(
            {"at": TIMESTAMP, "actor": STRING, "action": ACTIONS, "changes": CHANGES}
        ),
        "History": _items("HistoryEntry"),
    }


def _people() -> Json:
    audit_entry = {
        "at": TIMESTAMP,
        "actor": STRING,
        "action": ACTIONS,
        "kind": {"enum": ["token", "user", "role"]},
        "target": STRING,
        "changes": CHANGES,
    }
    levels = {"type": "object", "additionalProperties": {"enum": list(LEVELS)}}
    return {
        "AuditEntry": closed(audit_entry),
        "Audit": _items("AuditEntry"),
        "User": closed(USER),
        "UserList": _page("User"),
        "Role": closed({"name": STRING, "description": STRING, "access": ref("Access")}),
        "RoleList": _items("Role"),
        "Api": closed({"name": STRING, "prefix": STRING, "description": STRING}),
        "ApiList": _items("Api"),
        "Me": closed({"user": ref("User"), "token": ref("Token"), "levels": levels}),
    }


# -- least privilege from observed use (admin/advice.py) ----------------------

DAY = {"type": "string", "format": "date", "description": "a UTC day, yyyy-mm-dd"}


def _advice() -> Json:
    counts = {"safe": COUNT, "unsafe": COUNT}
    api_uses = closed({"api": STRING, **counts, "last_day": {**DAY, "type": ["string", "null"]}})
    day_uses = closed({"day": DAY, "api": STRING, **counts})
    level = {"enum": list(LEVELS)}
    usage = {
        "client_id": STRING,
        "window_days": {"type": "integer", "minimum": 1},
        "since": DAY,
        "until": DAY,
        "items": {"type": "array", "items": ref("ApiUses")},
        "days": {"type": "array", "items": ref("DayUses")},
    }
    advice = {
        "client_id": STRING,
        "window_days": {"type": "integer", "minimum": 1},
        "since": DAY,
        "role": NULLABLE_STRING,
        "current": ref("Access"),
        "proposed": {**ref("Access"), "description": "the access map apply writes"},
        "changes": {
            "type": "object",
            "description": "{api: [effective level now, after]} where it changes",
            "additionalProperties": {
                "type": "array",
                "items": level,
                "minItems": 2,
                "maxItems": 2,
            },
        },
        "uses": {"type": "object", "additionalProperties": closed(counts)},
        "notes": {"type": "array", "items": STRING},
    }
    return {
        "ApiUses": api_uses,
        "DayUses": day_uses,
        "TokenUsage": closed(usage),
        "TokenAdvice": closed(advice),
    }


def answers(apis: list[str]) -> Json:
    """Every answer's schema, and the two they share (``Access``, ``Error``)."""
    access = {
        "type": "object",
        "propertyNames": {"enum": [*apis, "admin", "*"]},
        "additionalProperties": {"enum": list(LEVELS)},
        "description": "API name (or admin, or * for every API) to access level",
    }
    error = closed({"error": STRING, "message": STRING, "field": STRING}, ["error", "message"])
    return _propagated({"Access": access, "Error": error, **_tokens(), **_people(), **_advice()})


# -- acknowledged revocation (spec section 10; admin/propagation.py) ------------

PROPAGATION = closed(
    {
        "replicas": {**COUNT, "description": "replicas live when the change committed"},
        "acknowledged": {**COUNT, "description": "of those, the ones that applied it in time"},
        "slowest_ms": {
            "type": ["number", "null"],
            "description": "ms until the last acknowledgement heard; null: none heard",
        },
        "pending": {
            "type": "array",
            "items": STRING,
            "description": "the replicas that had not acknowledged at admin.ack_timeout_seconds",
        },
        "unknown": {
            "type": "boolean",
            "description": "present (true) when the registry could not be read",
        },
    },
    ["replicas", "acknowledged", "slowest_ms", "pending"],
)
#: The answers that carry ``propagation`` (each view calls ``views_shared.propagated``).
PROPAGATED = ("Deleted", "Revoked", "RegeneratedToken")
REPLICA = {
    "id": STRING,
    "host": STRING,
    "version": STRING,
    "started": TIMESTAMP,
    "generation": {"type": "integer", "description": "the last generation it applied"},
    "last_generation_applied": {"type": "integer", "description": "the same as generation"},
    "lag": {**COUNT, "description": "the store's generation minus the one applied"},
    "seen_at": TIMESTAMP,
}


def _propagated(schemas: Json) -> Json:
    """``schemas`` with ``propagation`` in the answers of changes that wait for the replicas."""
    propagation = {"propagation": ref("Propagation")}
    for name in PROPAGATED:
        schema = schemas[name]
        schemas[name] = {
            **schema,
            "properties": {**schema["properties"], **propagation},
            "required": [*schema["required"], "propagation"],
        }
    user = schemas["User"]
    return {
        **schemas,
        "Propagation": PROPAGATION,
        "PropagatedToken": closed({**TOKEN, **propagation}),
        "PropagatedRole": closed({**schemas["Role"]["properties"], **propagation}),
        "PropagatedTokenRecord": closed({**schemas["TokenRecord"]["properties"], **propagation}),
        # A PATCH answers ``propagation`` only when it deactivates the user.
        "ChangedUser": closed({**user["properties"], **propagation}, user["required"]),
        "Replica": closed(REPLICA),
        "ReplicaList": _items("Replica"),
    }
