"""Authenticating admin callers with the same credentials and verifier as the proxy.

    request -> credentials (pure) -> the process's shared Verifier -> Caller

The admin listener uses the proxy's ``Verifier`` (sidecar/verification.py): the
same checks, the same cache, the same wrong-secret limit and argon2 pool. A
token revoked, expired, regenerated or belonging to a deactivated user is
refused by the next admin call: this process's writes drop its cache entries
before they answer (``RedisStore.after_commit``), other processes' writes
arrive through pub/sub. Every refusal is the proxy's one ``InvalidToken``; every
acceptance sets the token's ``last_used_at``, batched as the proxy's (sidecar/usage.py).
"""

from __future__ import annotations

from aiohttp import web

from admin.authz import Caller
from sidecar import clock, credentials, limits
from sidecar.config import Config
from sidecar.errors import KeystileError
from sidecar.usage import UsageRecorder
from sidecar.verifier import Verifier


class AdminVerifier:
    def __init__(self, verifier: Verifier, usage: UsageRecorder) -> None:
        self.verifier = verifier
        # A token used only on the admin API is in use: a clean-up of tokens
        # unused for months must not find an admin's working token among them.
        self.usage = usage

    async def caller(self, request: web.Request, config: Config) -> Caller:
        try:
            presented = credentials.read_request(
                request.headers, config.tokens.prefix, config.headers
            )
            verified = await self.verifier.verify(presented, request.remote)
        except KeystileError as error:
            await limits.tarpit(error, config.limits.refusal_delay_seconds)
            raise
        self.usage.note(verified.client_id)
        return Caller(
            client_id=verified.client_id,
            username=verified.username,
            access=verified.access,
            role_access=verified.role_access,
            expires_at=clock.from_rfc3339(verified.expires_at),
        )
