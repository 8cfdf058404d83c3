"""The console's own routes: its page, its static files, and its session.

    POST   /console/v1/session  {"token": ...} -> sign in: the API's verifier, limit
                                and tarpit; a session cookie, never the token
    GET    /console/v1/session  who is signed in, their level on ``admin``, the
                                CSRF secret, and the choices the forms offer
    DELETE /console/v1/session  sign out

Everything else the console does goes through ``/admin/v1`` with the cookie.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from admin.authz import Caller
from admin.console.auth import COOKIE, check_csrf
from admin.errors import BadRequest
from admin.state import CONFIG, CONSOLE, STORE, VERIFIER
from admin.views_shared import NO_STORE, answer, read_body
from sidecar import clock, credentials
from sidecar.credentials import MAX_CREDENTIAL_LENGTH
from sidecar.errors import InvalidRequest, InvalidToken, KeystileError

STATIC = Path(__file__).parent / "static"
SESSION = "/console/v1/session"
routes = web.RouteTableDef()


@routes.get("/")
async def page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


@routes.post(SESSION)
async def sign_in(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    token = _token_field(await read_body(request))
    try:
        presented = credentials.read(config.tokens.prefix, [f"Bearer {token}"], [], [])
    except (InvalidToken, InvalidRequest) as error:
        refused = InvalidToken(error.reason, field="token")
        await request.app[VERIFIER].refused(refused, request)
        raise refused from None
    try:
        # The API's own path: cache, wrong-secret limit (429) and tarpit.
        caller = await request.app[VERIFIER].verify(presented, request)
    except InvalidToken as error:
        raise InvalidToken(error.reason, field="token") from None
    record = await request.app[STORE].get_token(caller.client_id)
    regenerated_at = record.regenerated_at if record else None
    sessions = request.app[CONSOLE].sessions
    session_id, session = await sessions.begin(caller.client_id, regenerated_at)
    response = answer(_described(request, caller, session.csrf))
    response.set_cookie(
        COOKIE,
        session_id,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=_over_tls(request),
        max_age=None,  # a browser session cookie; the server's idle TTL ends it
    )
    return response


def _over_tls(request: web.Request) -> bool:
    """TLS here, or at a proxy in front that says so.

    X-Forwarded-Proto is taken from anyone: it can only make the cookie
    stricter (Secure), never looser, and only for the client that sent it.
    """
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def _token_field(body: dict[str, Any]) -> str:
    unknown = sorted(set(body) - {"token"})
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r}", field=unknown[0])
    token = body.get("token")
    if not isinstance(token, str) or not token.strip():
        raise BadRequest("the token is required", field="token")
    if len(token) > MAX_CREDENTIAL_LENGTH:
        raise BadRequest("the token is too long", field="token")
    return token.strip()


@routes.get(SESSION)
async def who(request: web.Request) -> web.Response:
    _, session, caller = await request.app[CONSOLE].signed_in(request)
    return answer(_described(request, caller, session.csrf))


@routes.delete(SESSION)
async def sign_out(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    try:
        session_id, session, _ = await console.signed_in(request)
    except KeystileError:
        pass  # already ended: signing out still clears the cookie
    else:
        check_csrf(request, session)
        await console.sessions.end(session_id)
    response = web.Response(status=204, headers=NO_STORE)
    response.del_cookie(COOKIE, path="/")
    return response


def _described(request: web.Request, caller: Caller, csrf: str) -> dict[str, Any]:
    """The signed-in caller and the choices the console's forms offer."""
    config = request.app[CONFIG]
    return {
        "user": caller.username,
        "client_id": caller.client_id,
        "level": caller.admin_level.value,
        "expires_at": clock.to_rfc3339(caller.expires_at) if caller.expires_at else None,
        "csrf": csrf,
        "apis": [{"name": api.name, "description": api.description} for api in config.apis],
        "expiry_months_choices": list(config.tokens.expiry_months_choices),
        "default_expiry_months": config.tokens.default_expiry_months,
        "max_grace_seconds": config.tokens.max_grace_seconds,
    }
