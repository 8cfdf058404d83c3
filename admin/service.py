"""The admin operations that need more than one store call: issuing and regenerating.

A secret is drawn and hashed here (in the process's bounded argon2 pool, the
one verification uses: past its queue, a 503 ``overloaded`` before any store
change), the store
change is one transaction, and the plaintext exists only in the returned
``Issued``, which the view shows once.

``propagated`` is the one call a view makes after a change that must reach
every replica before it answers (revoke, delete, deactivate, role changes):
it waits for their acknowledgements (admin/propagation.py) and answers the
``propagation`` object the view adds to its body (or, for a 204, to the
``Keystile-Propagation`` header: ``views_shared.propagated_no_content``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from admin.propagation import NOBODY, Propagation
from admin.schema import NewToken, Regeneration
from sidecar import clock, tokenformat
from sidecar.store.management import AdminStore
from sidecar.verification.hashing import HashingPool
from sidecar.verification.issuing import Issued, hash_secret, issue_token


class Service:
    def __init__(
        self,
        store: AdminStore,
        pool: HashingPool,
        prefix: str,
        propagation: Propagation | None = None,
    ) -> None:
        self.store = store
        self.pool = pool
        self.prefix = prefix
        self.propagation = propagation

    async def create_token(self, draft: NewToken, actor: str) -> Issued:
        return await issue_token(
            self.store,
            self.pool,
            self.prefix,
            user=draft.user,
            actor=actor,
            expires_at=draft.expires_at,
            description=draft.description,
            role=draft.role,
            access=draft.access,
        )

    async def regenerate(self, client_id: str, change: Regeneration, actor: str) -> Issued:
        secret = tokenformat.new_client_secret()
        secret_hash = await hash_secret(self.pool, secret)
        grace_until = None
        if change.grace_seconds:
            grace_until = clock.to_rfc3339(clock.now() + timedelta(seconds=change.grace_seconds))
        token = await self.store.regenerate_token(
            client_id, secret_hash, clock.to_rfc3339(change.expires_at), grace_until, actor
        )
        return Issued(token, secret, tokenformat.format_token(self.prefix, client_id, secret))

    async def propagated(self) -> dict[str, Any]:
        """After a committed change: wait until every live replica applied it, or the timeout.

        Call it after the store write returned; the answer is the body's ``propagation``.
        """
        if self.propagation is None:  # a Service made without a registry to ask
            return {**NOBODY}
        return await self.propagation.wait()
