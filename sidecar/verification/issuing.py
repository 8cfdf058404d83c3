"""Issuing secrets: a new token, or a new secret for an existing one.

The plaintext secret exists only in the value returned here, which the caller
shows once; the store keeps the argon2id hash. The secret is hashed before any
store change, so a hash refused (a full argon2 queue) leaves nothing behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sidecar import clock, tokenformat
from sidecar.records import Token
from sidecar.store.changes import Conflict
from sidecar.store.tokens import TokenStore
from sidecar.verification.hashing import Hasher, HashingPool


@dataclass(frozen=True)
class Issued:
    token: Token
    client_secret: str
    bearer: str

    def __repr__(self) -> str:
        return f"Issued(client_id={self.token.client_id!r}, client_secret='***')"


async def hash_secret(hashing: HashingPool | Hasher, secret: str) -> str:
    """The argon2id hash of ``secret``, off the event loop.

    A serving process hashes in its ``HashingPool``, the one verification
    uses: bounded by ``hashing.threads`` and ``hashing.queue_size``, and a
    full queue is ``Overloaded`` (503) before anything is stored. A bare
    ``Hasher`` is for a one-shot process with no pool (``keystile bootstrap``).
    """
    if isinstance(hashing, HashingPool):
        return await hashing.hash(secret)
    # argon2 takes tens of milliseconds of CPU: keep it off the event loop.
    return await asyncio.to_thread(hashing.hash, secret)


async def issue_token(
    store: TokenStore,
    hashing: HashingPool | Hasher,
    prefix: str,
    *,
    user: str,
    actor: str,
    expires_at: datetime,
    description: str = "",
    role: str | None = None,
    access: Mapping[str, str] | None = None,
) -> Issued:
    secret = tokenformat.new_client_secret()
    secret_hash = await hash_secret(hashing, secret)
    now = clock.to_rfc3339(clock.now())
    for _ in range(5):
        draft = Token(
            client_id=tokenformat.new_client_id(),
            user=user,
            secret_hash=secret_hash,
            created_at=now,
            expires_at=clock.to_rfc3339(expires_at),
            description=description,
            role=role,
            access=dict(access or {}),
            created_by=actor,
        )
        try:
            stored = await store.create_token(draft, actor)
        except Conflict as exc:
            if exc.field == "client_id":  # 131 random bits met an old id: draw again
                continue
            raise
        return Issued(stored, secret, tokenformat.format_token(prefix, stored.client_id, secret))
    raise RuntimeError("could not draw an unused client_id")  # pragma: no cover
