"""Authenticating admin callers with the same credentials and verifier as the proxy.

    request -> credentials (pure) -> the process's shared Verifier -> Caller
            -> no credential: the web console's session cookie (admin/console/auth.py)

The admin listener uses the proxy's ``Verifier`` (sidecar/verification/runtime.py): the
same checks, the same cache, the same wrong-secret limit and argon2 pool. A
token revoked, expired, regenerated or belonging to a deactivated user is
refused by the next admin call: this process's writes drop its cache entries
before they answer (``StoreBase.after_commit``), other processes' writes
arrive through pub/sub. Every refusal is the proxy's one ``InvalidToken``; every
acceptance sets the token's ``last_used_at``, batched as the proxy's (verification.usage).
A request that presents a credential is judged by it alone, never by a
console cookie it may also carry.
"""

from __future__ import annotations

from aiohttp import web

from admin.authz import Caller
from admin.console.auth import COOKIE, ConsoleAuth, caller_of
from sidecar import credentials
from sidecar.config import Config
from sidecar.credentials import Presented
from sidecar.errors import KeystileError, MissingCredential
from sidecar.verification import limits
from sidecar.verification.usage import UsageRecorder
from sidecar.verification.verifier import Verifier


class AdminVerifier:
    def __init__(
        self, verifier: Verifier, usage: UsageRecorder, console: ConsoleAuth | None = None
    ) -> None:
        self.verifier = verifier
        # A token used only on the admin API is in use: a clean-up of tokens
        # unused for months must not find an admin's working token among them.
        self.usage = usage
        self.console = console

    async def caller(self, request: web.Request, config: Config) -> Caller:
        try:
            presented = credentials.read_request(
                request.headers, config.tokens.prefix, config.headers
            )
        except MissingCredential:
            if self.console is not None and COOKIE in request.cookies:
                found = await self.console.caller(request)
                self.usage.note(found.client_id)  # the console's use is a use of its token
                return found
            raise
        except KeystileError as error:
            await limits.tarpit(error, config.limits.refusal_delay_seconds)
            raise
        return await self.verify(presented, request, config)

    async def verify(self, presented: Presented, request: web.Request, config: Config) -> Caller:
        """``presented`` through the proxy's verifier, a refused guess held in the tarpit."""
        try:
            verified = await self.verifier.verify(presented, request.remote)
        except KeystileError as error:
            await limits.tarpit(error, config.limits.refusal_delay_seconds)
            raise
        self.usage.note(verified.client_id)
        return caller_of(verified)
