"""Verification: from a presented credential to a verified identity.

    presented credential -> store (token, user, role) -> status checks -> argon2

Every refusal is an ``InvalidToken`` whose ``reason`` names the cause for logs
and metrics; the client sees one body for all of them. argon2 runs in a thread
pool so the event loop keeps serving other requests meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field

from sidecar import clock
from sidecar.credentials import Presented
from sidecar.errors import InvalidToken
from sidecar.hashing import Hasher
from sidecar.store import Credential, RedisStore


@dataclass(frozen=True)
class Verified:
    """A credential that passed: who it is and what it may reach."""

    client_id: str
    username: str
    role: str | None
    access: Mapping[str, str] = field(default_factory=dict)
    role_access: Mapping[str, str] | None = None
    expires_at: str = ""


class Verifier:
    def __init__(self, store: RedisStore, hasher: Hasher, executor: Executor | None) -> None:
        self.store = store
        self.hasher = hasher
        self.executor = executor

    async def verify(self, presented: Presented) -> Verified:
        credential = await self.store.load_credential(presented.client_id)
        if credential is None:
            raise InvalidToken("unknown client_id")
        self._check_standing(credential)
        if not await self._secret_matches(credential, presented.client_secret):
            raise InvalidToken("wrong secret")
        token = credential.token
        return Verified(
            client_id=token.client_id,
            username=credential.user.username if credential.user else token.user,
            role=credential.role.name if credential.role else None,
            access=token.access,
            role_access=credential.role.access if credential.role else None,
            expires_at=token.expires_at,
        )

    @staticmethod
    def _check_standing(credential: Credential) -> None:
        token, now = credential.token, clock.now()
        if token.revoked:
            raise InvalidToken("revoked")
        if token.is_expired(now):
            raise InvalidToken("expired")
        if credential.user is None or not credential.user.active:
            raise InvalidToken("user inactive")

    async def _secret_matches(self, credential: Credential, secret: str) -> bool:
        loop = asyncio.get_running_loop()
        hashes = [credential.token.secret_hash]
        grace = credential.token.grace_hash(clock.now())
        if grace:
            hashes.append(grace)
        for secret_hash in hashes:
            if await loop.run_in_executor(self.executor, self.hasher.verify, secret_hash, secret):
                return True
        return False
