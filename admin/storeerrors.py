"""The middleware that turns the store's failed preconditions into admin errors.

``Missing`` is a 404; a ``Conflict`` that names a field (the request refers
to a user or role that does not exist) is a 400 naming it; any other
``Conflict`` is a 409. It sits inside ``json_errors``, which renders them.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from admin.errors import BadRequest, Conflicting, NotFound
from sidecar.store.changes import Conflict, Missing


@web.middleware
async def store_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Missing:
        raise NotFound("no such record (or not one this caller may see)") from None
    except Conflict as exc:
        if exc.field is not None:
            raise BadRequest(str(exc), field=exc.field) from None
        raise Conflicting(str(exc)) from None
