"""``GET /admin/v1/replicas``: the live replicas and how far each lags (spec section 10)."""

from __future__ import annotations

from aiohttp import web

from admin.state import STORE
from admin.views_shared import admin_caller, answer, listed
from sidecar.verification import replicas

routes = web.RouteTableDef()


@routes.get("/admin/v1/replicas")
async def list_replicas(request: web.Request) -> web.Response:
    await admin_caller(request)
    store = request.app[STORE]
    async with store.guard():  # a store that cannot be read is a 503, as for every read
        registry = await replicas.read(store.redis)
    return answer(listed([entry.public(registry.generation) for entry in registry.live]))
