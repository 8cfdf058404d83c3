"""Authenticating admin callers with the same credentials and checks as the proxy.

    request -> credentials (pure) -> store (token, user, role) -> standing -> argon2

The admin listener verifies every call against the store, without the proxy's
cache: admin calls are few, and reading the store each time means a token
revoked, expired, regenerated or belonging to a deactivated user is refused by
the very next admin call. Every refusal is the proxy's one ``InvalidToken``;
the reason goes to the log only.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor

from aiohttp import web

from admin.authz import Caller
from sidecar import clock, credentials
from sidecar.config import Config
from sidecar.errors import InvalidToken
from sidecar.hashing import Hasher
from sidecar.store import Credential, RedisStore


class AdminVerifier:
    def __init__(self, store: RedisStore, hasher: Hasher, executor: Executor) -> None:
        self.store = store
        self.hasher = hasher
        self.executor = executor

    async def caller(self, request: web.Request, config: Config) -> Caller:
        names = config.headers
        presented = credentials.read(
            config.tokens.prefix,
            request.headers.getall("Authorization", []),
            request.headers.getall(names.credential_client_id, []),
            request.headers.getall(names.credential_client_secret, []),
        )
        credential = await self.store.load_credential(presented.client_id)
        if credential is None:
            raise InvalidToken("unknown client_id")
        _check_standing(credential)
        if not await self._secret_matches(credential, presented.client_secret):
            raise InvalidToken("wrong secret")
        assert credential.user is not None  # checked by _check_standing
        return Caller(
            client_id=credential.token.client_id,
            username=credential.user.username,
            access=credential.token.access,
            role_access=credential.role.access if credential.role else None,
            expires_at=clock.from_rfc3339(credential.token.expires_at),
        )

    async def _secret_matches(self, credential: Credential, secret: str) -> bool:
        loop = asyncio.get_running_loop()
        hashes = [credential.token.secret_hash]
        if grace := credential.token.grace_hash(clock.now()):
            hashes.append(grace)
        for secret_hash in hashes:
            if await loop.run_in_executor(self.executor, self.hasher.verify, secret_hash, secret):
                return True
        return False


def _check_standing(credential: Credential) -> None:
    token = credential.token
    if token.revoked:
        raise InvalidToken("revoked")
    if token.is_expired(clock.now()):
        raise InvalidToken("expired")
    if credential.user is None or not credential.user.active:
        raise InvalidToken("user inactive")
