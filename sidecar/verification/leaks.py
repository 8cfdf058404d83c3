"""The leak response: which reported tokens are real, and containing them (spec section 10).

    reported token -> format and checksum (pure) -> store read -> argon2
                   -> LeakStore.contain (one transaction: change, record, notice)

A token counts as real only when its secret verifies against the stored hash
(the current one, or the previous one while its regeneration's grace lasts):
a known client_id with a wrong secret changes nothing, so nobody can revoke
another's token by naming its public client_id.

Equal work for real and fake: every token that passes the checksum costs one
store read and at least one argon2 run, against the stored hash or, for an
unknown client_id, against a hash made here of a random secret; a malformed
token or a bad checksum costs neither (anyone can compute a CRC32, so that
tells a reporter nothing it did not know). Only a real token's write is
extra, and the answer's floor (``leaks.answer_floor_seconds``, in
``sidecar.proxy.leaks``) covers it. Tokens are verified one after another, so
one report holds at most one argon2 thread at a time and cannot crowd the
proxy's own verifications out of the pool.

``ReportLimiter`` is the per-address limit on reports: a fixed one-minute
window counted in Redis (INCR, then PEXPIRE on the first), shared by every
worker and replica.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from sidecar import tokenformat
from sidecar.errors import StoreUnavailable, TooManyAttempts
from sidecar.leakreport import Reported
from sidecar.records import Token
from sidecar.store import keys
from sidecar.store.durability import NotDurable
from sidecar.store.leaks import LeakStore
from sidecar.verification.hashing import HashingPool

log = logging.getLogger("keystile.leaks")


@dataclass(frozen=True, slots=True)
class Contained:
    """One token the report changed (for the log and the metric: never its secret)."""

    client_id: str
    user: str
    action: str
    #: Where the report says the token was found (GitHub's match url), if it says.
    url: str | None = None


class LeakResponder:
    def __init__(self, store: LeakStore, pool: HashingPool, prefix: str, action: str) -> None:
        self.store = store
        self.pool = pool
        self.prefix = prefix
        self.action = action
        #: The hash an unknown client_id's secret is checked against (made on first use).
        self._decoy: str | None = None

    async def respond(self, reported: Sequence[Reported]) -> list[Contained]:
        """Contain every real, active token reported; each distinct token is handled once."""
        first = {item.token: item for item in reversed(reported)}  # the first url of each
        contained = []
        for token in dict.fromkeys(item.token for item in reported):
            url = first[token].url
            found = await self._one(token, url)
            if found is not None:
                contained.append(Contained(found.client_id, found.user, self.action, url))
        return contained

    async def _one(self, token: str, url: str | None) -> Token | None:
        try:
            parsed = tokenformat.parse_token(self.prefix, token)
        except tokenformat.MalformedToken:
            return None
        matched = await self._matching_hash(parsed)
        if matched is None:
            return None
        try:
            return await self.store.contain(parsed.client_id, matched, self.action, url)
        except NotDurable as exc:
            # Applied on the primary, durability unconfirmed: a 503 here would tell
            # the reporter the token was real, so it is logged, not answered.
            fields = {"client_id": parsed.client_id, "reason": exc.reason}
            log.warning("leak response applied but not confirmed durable", extra={"fields": fields})
            return await self.store.get_token(parsed.client_id)

    async def _matching_hash(self, parsed: tokenformat.ParsedToken) -> str | None:
        """The stored hash the reported secret matches, if any.

        Always two argon2 runs, whatever the token: the current hash and the
        previous one (checked even when its grace has ended), the decoy where
        either is missing, and no stop at the first match. An unknown id, a
        wrong secret and a right one then cost the same, but for the right
        one's store write (docs/leaks.md).
        """
        stored = await self.store.get_token(parsed.client_id)
        current = stored.secret_hash if stored is not None else None
        previous = stored.previous_hash if stored is not None else None
        matched = None
        for secret_hash in (current, previous):
            checked = secret_hash or await self._decoy_hash()
            if await self.pool.verify(checked, parsed.client_secret) and secret_hash:
                matched = matched or secret_hash
        return matched

    async def _decoy_hash(self) -> str:
        if self._decoy is None:
            self._decoy = await self.pool.hash(tokenformat.new_client_secret())
        return self._decoy


#: One window per address: the first report starts it, the count resets when it ends.
_COUNT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return {count, redis.call('PTTL', KEYS[1])}
"""
WINDOW_SECONDS = 60


class ReportLimiter:
    """At most ``per_minute`` reports from one address in a window (0: no limit)."""

    def __init__(self, redis: aioredis.Redis, per_minute: int) -> None:
        self.redis = redis
        self.per_minute = per_minute

    async def admit(self, address: str) -> None:
        """Count one report; ``TooManyAttempts`` (429) past the limit, 503 without the store.

        Fail closed: a report that cannot be counted is not processed.
        """
        if self.per_minute <= 0:
            return
        try:
            window_ms = WINDOW_SECONDS * 1000
            count, ttl_ms = await self.redis.eval(
                _COUNT_SCRIPT, 1, keys.leak_reports(address), window_ms
            )
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {type(exc).__name__}") from exc
        if int(count) > self.per_minute:
            left = max(int(ttl_ms), 1) / 1000
            raise TooManyReports("leak-report limit", retry_after=math.ceil(left))


class TooManyReports(TooManyAttempts):
    """Too many leak reports from one address within a minute."""

    code = "too_many_requests"
    public_message = "too many leak reports from this address; retry later"
