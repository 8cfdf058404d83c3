"""The OpenAPI 3.1 document of ``/admin/v1`` (placeholder until written out)."""

from __future__ import annotations

from aiohttp import web


async def view(request: web.Request) -> web.Response:
    return web.json_response(
        {"openapi": "3.1.0", "info": {"title": "Keystile admin API", "version": "1"}, "paths": {}}
    )
