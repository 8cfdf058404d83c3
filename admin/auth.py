"""Authenticating admin callers on the proxy's own path (sidecar/verification/authentication.py).

    request -> credentials (pure) -> the process's shared Verifier -> Caller
            -> no credential: the web console's session cookie (admin/console/auth.py)

The admin listener uses the proxy's ``Authenticator`` over the proxy's
``Verifier`` (sidecar/verification/runtime.py): the same checks, the same
cache, the same wrong-secret limit (keyed by the address the access log
shows, per ``proxy.trusted_hops``), the same argon2 pool, tarpit and auth
metrics, and the same access-log record. A token revoked, expired,
regenerated or belonging to a deactivated user is refused by the next admin
call: this process's writes drop its cache entries before they answer
(``StoreBase.after_commit``), other processes' writes arrive through pub/sub.
Every refusal is the proxy's one ``InvalidToken``; every acceptance sets the
token's ``last_used_at``, batched as the proxy's (verification.usage): a token
used only on the admin API is in use, and a clean-up of tokens unused for
months must not find an admin's working token among them. An authorized
admin call (``admin_caller``, console sessions included; never a ``/me``
one, which needs no admin level) is also a use of the API ``admin``
(``used_admin``): one dict increment in the same batched recorder as the
proxy's uses, so the advice (admin/advice.py) sees what admin access a token
needed. A request that
presents a credential is judged by it alone, never by a console cookie it may
also carry.
"""

from __future__ import annotations

import functools

from aiohttp import web

from admin.authz import ADMIN_API, Caller
from admin.console.auth import COOKIE, ConsoleAuth, caller_of
from sidecar.credentials import Presented
from sidecar.errors import KeystileError
from sidecar.proxy.state import outcome_of
from sidecar.verification.authentication import Authenticator, Otherwise


class AdminVerifier:
    def __init__(self, authenticator: Authenticator, console: ConsoleAuth | None = None) -> None:
        self.authenticator = authenticator
        self.console = console

    async def caller(self, request: web.Request) -> Caller:
        """The caller behind the request's credential, or else behind its console session."""
        session: Otherwise | None = None
        if self.console is not None and COOKIE in request.cookies:
            session = functools.partial(self.console.verified, request)
        record = outcome_of(request)
        verified = await self.authenticator.authenticate(request.headers, record, session)
        return caller_of(verified)

    def used_admin(self, caller: Caller, method: str) -> None:
        """Count an authorized admin call as a use of ``admin`` (a dict increment)."""
        self.authenticator.usage.uses.note(caller.client_id, ADMIN_API, method)

    async def verify(self, presented: Presented, request: web.Request) -> Caller:
        """``presented`` (a console sign-in's) through the proxy's verifier and its records."""
        verified = await self.authenticator.verify(presented, outcome_of(request), request.headers)
        return caller_of(verified)

    async def refused(self, error: KeystileError, request: web.Request) -> None:
        """Record a credential refused before it reached the verifier; a guess waits."""
        await self.authenticator.refused(error, outcome_of(request))
