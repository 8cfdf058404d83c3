"""What the proxy needs of the store: ``CredentialStore``, and the ``Credential`` it reads.

The verifier (its cache fill reads a credential and may upgrade a hash), the
``last_used_at`` recorder and the console's session check type against this
protocol, not against Redis: they read and touch, and never change a record.
``redis_store.RedisStore`` is the implementation that runs.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

from sidecar.records import Role, Token, User
from sidecar.usedays import UseKey


@dataclass(frozen=True)
class Credential:
    """What the verifier needs about one client_id, read in one round trip."""

    token: Token
    user: User | None
    role: Role | None


class CredentialStore(Protocol):
    """The reads and touches of verification; none of them is a change (no event, no history)."""

    async def load_credential(self, client_id: str) -> Credential | None:
        """The token with its user and role; None when no token has this id."""
        ...

    async def upgrade_secret_hash(self, client_id: str, old_hash: str, new_hash: str) -> bool:
        """Replace a hash made with older argon2 parameters, unless the secret changed since."""
        ...

    async def touch_last_used(self, used: Mapping[str, str]) -> None:
        """Move ``last_used_at`` forward for many tokens (client_id -> RFC 3339 time)."""
        ...

    async def add_uses(
        self,
        day: str,
        counts: Mapping[UseKey, int],
        usage_days: int,
        trim_before: str | None = None,
        trimmed: Collection[str] = (),
    ) -> None:
        """Add uses per token, API and method class to ``day`` (sidecar/store/uses.py)."""
        ...
