"""Forward-auth mode: ``/_keystile/check`` answers for another proxy (spec section 3).

nginx ``auth_request``, Traefik ``forwardAuth`` and Envoy ``ext_authz`` ask
whether a request may pass; the answer is 200 with all four identity
headers, the role's empty when the token has none (a front that copies only
the headers an answer carries would otherwise keep a client's own copy), or
the 401/403 of the proxy (400 for a malformed credential). The original
method and URI come from, in order:

- ``X-Original-Method``/``X-Original-URI`` (the usual nginx set-up),
- ``X-Forwarded-Method``/``X-Forwarded-Uri`` (what Traefik sends),
- the check request itself: Envoy's HTTP ``ext_authz`` service appends the
  original path to its ``path_prefix`` and keeps the method, so
  ``POST /_keystile/check/orders/42`` asks about ``POST /orders/42``.

A URI that matches no API, or that the proxy would refuse as unsafe, is a 403
(auth_request turns any other 4xx into a 500).
"""

from __future__ import annotations

from aiohttp import web

from sidecar import headers
from sidecar.errors import InsufficientScope, InvalidRequest, NotFound
from sidecar.proxy.decision import authenticate, authorize
from sidecar.proxy.state import CONFIG, USAGE, outcome_of

CHECK_PATH = "/_keystile/check"


def original(request: web.Request) -> tuple[str, str]:
    """``(method, raw path)`` of the request being asked about."""
    for method_name, uri_name in (
        ("X-Original-Method", "X-Original-URI"),
        ("X-Forwarded-Method", "X-Forwarded-Uri"),
    ):
        if uri_name in request.headers:
            method = request.headers.get(method_name, "GET")
            return method.upper(), request.headers[uri_name].partition("?")[0]
    tail = request.raw_path.partition("?")[0][len(CHECK_PATH) :]
    if not tail:
        raise InvalidRequest("X-Original-URI or X-Forwarded-Uri is required")
    return request.method.upper(), tail


async def check(request: web.Request) -> web.Response:
    verified = await authenticate(request)
    method, path = original(request)
    try:
        decision = authorize(request, verified, method, path)
    except (NotFound, InvalidRequest) as error:
        raise InsufficientScope(error.reason) from None
    outcome_of(request).outcome = "allowed"
    request.app[USAGE].uses.note(verified.client_id, decision.route.api.name, method)
    response = web.Response(status=200)
    for name, value in headers.check_answer(request.app[CONFIG].headers, decision.identity):
        response.headers[name] = value
    response.headers["Cache-Control"] = "no-store"
    return response
