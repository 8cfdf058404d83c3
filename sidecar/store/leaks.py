"""The store write of the leak response: one reported token revoked or quarantined.

``LeakStore.contain`` is one transaction per token: it re-reads the token
under WATCH, changes it only if it is still active and the secret that was
verified is still one it accepts (a regeneration in between wins), records the
change with actor ``leak-report`` (history, audit, invalidation event, through
``StoreBase.record``) and queues the ``token.leaked`` notice
(``notices.queue``, with the ``url`` the report gave, if any) in the same
MULTI/EXEC, so the change, its record and its notice exist together or not
at all.

Quarantine sets the access map to ``{"*": "none"}`` and removes the role:
the token still authenticates, and every API answers it 403.
"""

from __future__ import annotations

import hmac

from redis.asyncio.client import Pipeline

from sidecar import clock
from sidecar.records import Token
from sidecar.store import keys, notices
from sidecar.store.base import hash_fields
from sidecar.store.redis_store import RedisStore
from sidecar.store.tokens import queue_token_update

ACTOR = "leak-report"
REVOKE = "revoke"
QUARANTINE = "quarantine"
#: A quarantined token's access map: no level on any API, present or future.
QUARANTINED_ACCESS = {"*": "none"}


class LeakStore(RedisStore):
    """The proxy's reads (``load_credential``) plus the one write the leak response makes."""

    async def contain(
        self, client_id: str, matched_hash: str, action: str, url: str | None = None
    ) -> Token | None:
        """Revoke or quarantine ``client_id``, whose secret (hashed ``matched_hash``) leaked.

        ``url`` (where the report says it was found) goes into the notice.

        The token after the change, or None when nothing changed: gone, revoked,
        expired, quarantined already, or no longer accepting that secret.
        """

        async def body(pipe: Pipeline) -> Token | None:
            raw = await pipe.hgetall(keys.token(client_id))
            if not raw:
                return None
            old = Token.from_fields(hash_fields(raw))
            new = _contained(old, matched_hash, action)
            if new is None:
                return None
            pipe.multi()
            queue_token_update(pipe, old, new, ACTOR, "revoked" if new.revoked else "updated")
            found = {"url": url} if url else {}
            notices.queue(pipe, notices.LEAKED, client_id, old.user, action=action, **found)
            return new

        return await self.transaction([keys.token(client_id)], body)


def _contained(token: Token, matched_hash: str, action: str) -> Token | None:
    """What ``token`` becomes, or None if it stays as it is."""
    now = clock.now()
    if token.revoked or token.is_expired(now):
        return None
    accepted = [h for h in (token.secret_hash, token.grace_hash(now)) if h]
    if not any(hmac.compare_digest(h, matched_hash) for h in accepted):
        return None
    if action == REVOKE:
        stamp = clock.to_rfc3339(now)
        return token.with_changes(revoked=True, revoked_at=stamp, revoked_by=ACTOR)
    if token.quarantined_at:
        return None
    stamp = clock.to_rfc3339(now)
    return token.with_changes(access=dict(QUARANTINED_ACCESS), role=None, quarantined_at=stamp)
