"""The fields of admin request bodies: each kind of value with its check and its JSON Schema.

A ``Kind`` pairs the check of one kind of value (``admin.values``: a username,
a bounded text, an access map, a future timestamp) with the JSON Schema that
documents it, so that what ``admin.schema`` refuses and what the OpenAPI
document promises come from one place. A ``Body`` is a table of named
``Field``\\ s: it refuses unknown and read-only names, demands the required
ones, checks the rest in table order and describes itself as an OpenAPI
object schema. Pure module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from admin.errors import BadRequest
from admin.values import (
    MAX_BULK,
    MAX_EMAIL,
    Rules,
    access_map,
    active,
    client_ids,
    email,
    grace,
    known,
    moment,
    months,
    role_ref,
    text,
    username,
)
from sidecar.records import ROLE_NAME, USERNAME
from sidecar.tokenformat import CLIENT_ID

Json = dict[str, Any]


@dataclass(frozen=True)
class Context:
    """What a check may depend on: the deployment's rules and the moment of the request."""

    rules: Rules
    now: datetime


#: For bodies whose checks depend on neither the config nor the clock.
PLAIN = Context(Rules(apis=()), datetime.min)


@dataclass(frozen=True)
class Kind:
    """One kind of value: its check (value, field name, context) and its JSON Schema."""

    check: Callable[[Any, str, Context], Any]
    json: Callable[[Rules], Json]


@dataclass(frozen=True)
class Field:
    kind: Kind
    description: str
    required: bool = False
    #: A field that cannot be given with this one (checked where this one is).
    excludes: str = ""


@dataclass(frozen=True)
class Body:
    """A request body: its fields in the order they are checked.

    With ``choice``, the body holds exactly one of its fields (a ``oneOf`` in the document).
    """

    fields: Mapping[str, Field]
    choice: bool = False

    def check(self, body: Mapping[str, Any], context: Context = PLAIN) -> dict[str, Any]:
        """Each field ``body`` holds, checked; unknown or missing required fields refused."""
        known(body, self.fields.keys())
        if self.choice and sum(name in body for name in self.fields) != 1:
            names = " and ".join(self.fields)
            raise BadRequest(f"give exactly one of {names}", field=next(iter(self.fields)))
        for name, declared in self.fields.items():
            if declared.required and not self.choice and name not in body:
                raise BadRequest(f"{name} is required", field=name)
        checked = {}
        for name, declared in self.fields.items():
            if name in body and declared.excludes and declared.excludes in body:
                raise BadRequest(f"give {declared.excludes} or {name}, not both", field=name)
            if name in body:
                checked[name] = declared.kind.check(body[name], name, context)
        return checked

    def json(self, rules: Rules) -> Json:
        if self.choice:
            return {"oneOf": [_object({name: field}, rules) for name, field in self.fields.items()]}
        return _object(self.fields, rules)


def _object(fields: Mapping[str, Field], rules: Rules) -> Json:
    properties = {name: _property(field, rules) for name, field in fields.items()}
    body: Json = {"type": "object", "properties": properties, "additionalProperties": False}
    required = [name for name, field in fields.items() if field.required]
    if required:
        body["required"] = required
    return body


def _property(field: Field, rules: Rules) -> Json:
    described = {"description": field.description} if field.description else {}
    return {**field.kind.json(rules), **described}


def pattern(regex: str) -> Json:
    return {"type": "string", "pattern": f"^{regex}$"}


# -- kinds --------------------------------------------------------------------


def bounded_text(limit: int) -> Kind:
    return Kind(
        lambda value, field, _: text(value, field, limit),
        lambda _: {"type": "string", "maxLength": limit},
    )


USERNAME_KIND = Kind(
    lambda value, field, _: username(value, field), lambda _: pattern(USERNAME.pattern)
)
EMAIL = Kind(
    lambda value, _field, _: email(value), lambda _: {"type": "string", "maxLength": MAX_EMAIL}
)
BOOLEAN = Kind(lambda value, field, _: active(value, field), lambda _: {"type": "boolean"})
ROLE_REF = Kind(
    lambda value, field, _: role_ref(value, field),
    lambda _: {"type": ["string", "null"], "pattern": f"^{ROLE_NAME.pattern}$"},
)
ACCESS = Kind(
    lambda value, field, context: access_map(value, context.rules, field),
    lambda _: {"$ref": "#/components/schemas/Access"},
)
MOMENT = Kind(
    lambda value, field, context: moment(value, field, context.now),
    lambda _: {"type": "string", "format": "date-time"},
)
MONTHS = Kind(
    lambda value, field, context: months(value, field, context.rules),
    lambda rules: {"enum": list(rules.expiry_months_choices)},
)
GRACE = Kind(
    lambda value, field, context: grace(value, field, context.rules),
    lambda rules: {"type": "integer", "minimum": 0, "maximum": rules.max_grace_seconds},
)
CLIENT_IDS = Kind(
    lambda value, field, _: client_ids(value, field),
    lambda _: {
        "type": "array",
        "items": pattern(CLIENT_ID.pattern),
        "minItems": 1,
        "maxItems": MAX_BULK,
    },
)
