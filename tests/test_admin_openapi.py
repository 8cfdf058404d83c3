"""The OpenAPI document of the admin API: complete, and true to what the server answers."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from admin import openapi
from admin.app import build_admin_app
from sidecar.config import Config
from tests.kits.admin import APIS, Harness, harness
from tests.kits.redis import make_config

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
ROOT = Path(__file__).resolve().parent.parent
#: No 5xx; every answer's status, media type and body as the document says.
CHECKS = (
    "not_a_server_error",
    "response_schema_conformance",
    "status_code_conformance",
    "content_type_conformance",
)


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[Harness]:
    # A generous store timeout: on a loaded machine a slow Redis answer must not
    # turn into a 503, which the run would count as a server error.
    async with harness(redis_url, redis={"url": redis_url, "timeout": 15}) as running:
        yield running


async def test_the_document_is_served_without_a_credential(admin: Harness) -> None:
    """GET /admin/v1/openapi.json answers an OpenAPI 3.1 document to anyone."""
    async with admin.session.get(admin.admin_url + "/admin/v1/openapi.json") as resp:
        document = await resp.json()

    assert resp.status == 200
    assert document["openapi"] == "3.1.0"
    access = document["components"]["schemas"]["Access"]
    assert access["propertyNames"]["enum"] == ["orders", "billing", "admin", "*"]


async def test_the_document_describes_every_route(admin: Harness) -> None:
    """Every method and path the admin app serves under /admin/v1 is documented, nothing else."""
    async with admin.session.get(admin.admin_url + "/admin/v1/openapi.json") as resp:
        document = await resp.json()
    app = _served_app_routes(admin)

    described = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }

    assert described == app


def _served_app_routes(admin: Harness) -> set[tuple[str, str]]:
    app = build_admin_app(admin.config, "redis://127.0.0.1:1/0")
    routes = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource else ""
        # The console's page, files and session (docs/console.md) are not the admin API.
        if route.method != "HEAD" and path.startswith("/admin/v1"):
            routes.add((route.method, path))
    return routes


UNREACHABLE = "redis://127.0.0.1:1/0"


def _config() -> Config:
    return make_config(UNREACHABLE, [{**api, "upstream": "http://127.0.0.1:9/"} for api in APIS])


def test_a_route_served_without_an_operation_stops_the_build() -> None:
    """An /admin/v1 route whose view the document does not describe is refused at build time."""
    config = _config()
    app = build_admin_app(config, UNREACHABLE)

    async def undocumented(request: web.Request) -> web.Response:
        return web.Response()

    app.router.add_get("/admin/v1/secret-door", undocumented)

    with pytest.raises(LookupError, match="GET /admin/v1/secret-door"):
        openapi.document(config, app.router.routes())


def test_every_reference_in_the_document_names_a_schema() -> None:
    """Each $ref (request bodies, answers, Access, Error) points at a schema the document holds."""
    document = build_admin_app(_config(), UNREACHABLE)[openapi.DOCUMENT]
    schemas = document["components"]["schemas"]

    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(document)))

    assert refs and refs <= set(schemas)


@pytest.mark.slow
async def test_schemathesis_finds_no_server_error_and_no_schema_break(
    admin: Harness, redis_url: str
) -> None:
    """A bounded schemathesis run (all phases, full admin callers) passes every check."""
    environment = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.kits.fuzzing",
        "KEYSTILE_FUZZ_REDIS_URL": redis_url,
        "PYTHONPATH": str(ROOT),
    }
    process = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS), "run", admin.admin_url + "/admin/v1/openapi.json",
        "--checks", ",".join(CHECKS),
        "--max-examples", "12", "--max-time", "50", "--seed", "1", "--workers", "1",
        "--request-timeout", "10", "--no-color",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env=environment, cwd=ROOT,
    )  # fmt: skip
    output, _ = await process.communicate()

    assert process.returncode == 0, output.decode()[-6000:]
