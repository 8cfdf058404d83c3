"""The OpenAPI 3.1 document of ``/admin/v1``, built from the running config and routes.

Built rather than kept as a static file so that it names this deployment's
APIs (access map keys), expiry choices and limits exactly; a schemathesis run
against it is part of the tests. Its parts are declared where the code that
they describe lives: request bodies in ``admin.schema`` (the same tables check
them), query parameters in ``admin.queries``, answers in
``admin.openapi_answers``, and each route's operation in
``admin.openapi_paths``. ``GET /admin/v1/openapi.json`` needs no credential:
it holds no secret and describes only what the code does.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractRoute

from admin.openapi_answers import Json, answers
from admin.openapi_paths import OPERATIONS, Fixed, paths
from admin.schema import BODIES
from admin.values import Rules
from sidecar.config import Config

DOCUMENT = web.AppKey("openapi", dict)


async def view(request: web.Request) -> web.Response:
    return web.json_response(request.app[DOCUMENT])


SELF = Fixed(
    {
        "summary": "This document; no credential needed",
        "security": [],
        "responses": {
            "200": {
                "description": "the OpenAPI 3.1 document",
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        },
    }
)


def _security(config: Config) -> Json:
    return {
        "bearer": {"type": "http", "scheme": "bearer"},
        "basic": {"type": "http", "scheme": "basic", "description": "client_id:secret"},
        "clientId": {"type": "apiKey", "in": "header", "name": config.headers.credential_client_id},
        "clientSecret": {
            "type": "apiKey",
            "in": "header",
            "name": config.headers.credential_client_secret,
        },
    }


def document(config: Config, routes: Iterable[AbstractRoute]) -> Json:
    """The document of the routes served, each under ``/admin/v1`` documented or a LookupError."""
    apis = [api.name for api in config.apis]
    rules = Rules.from_config(config)
    bodies = {name: body.json(rules) for name, body in BODIES.items()}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Keystile admin API",
            "version": "1",
            "description": "Manage API credentials: tokens, users, roles. See README.",
        },
        "paths": paths(routes, [*apis, "admin"], {**OPERATIONS, view: SELF}),
        "components": {
            "schemas": {**answers(apis), **bodies},
            "securitySchemes": _security(config),
        },
        "security": [{"bearer": []}, {"basic": []}, {"clientId": [], "clientSecret": []}],
    }
