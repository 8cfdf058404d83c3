"""Wrong-secret limits: 429 for one client_id from one address after too many misses.

Counting is in Redis (``keys.wrong_secrets``, a set of misses that expires one
minute after the first miss of its window), so every worker and replica adds
to the same count. Each process also remembers the pairs it found over the
limit until their window ends, so refusing them costs neither a store call
nor argon2: across ``W`` processes a pair gets at most
``wrong_secrets_per_minute + W`` argon2 verifications a minute.

The pair is (client_id, address): a flood from one address never locks the
real holder out when they call from another one, and a credential already in
the cache (the real holder's) is answered before any limit is looked at.
Counting is best effort: if Redis cannot be reached the miss is not counted,
and the request is refused with 401 as it would have been anyway.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from sidecar.errors import InactiveToken, InvalidToken, KeystileError, TooManyAttempts
from sidecar.store import keys

log = logging.getLogger("keystile.limits")


async def tarpit(error: KeystileError, delay: float) -> None:
    """Hold a refused guess (bad checksum, unknown id, wrong secret) for ``delay`` seconds.

    As PAM's fail delay: a connection sending guesses gets one answer per
    delay, so a flood of them cannot crowd out valid traffic. A real token
    refused for its standing (``InactiveToken``: revoked, expired, user
    inactive) is answered at once, since revocation is timed to that answer.
    """
    if delay and isinstance(error, InvalidToken) and not isinstance(error, InactiveToken):
        await asyncio.sleep(delay)


WINDOW_SECONDS = 60
#: Pairs remembered as over the limit, at most (older ones are pruned first).
MAX_BLOCKED = 100_000

# One window per pair: the first miss starts it, the count resets when it ends.
# Each miss is a member named by the miss, not an INCR: the client sends a command
# again when its connection fails, and a miss counted twice would lock out early.
_COUNT_SCRIPT = """
redis.call('ZADD', KEYS[1], 'NX', 0, ARGV[2])
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return {redis.call('ZCARD', KEYS[1]), redis.call('PTTL', KEYS[1])}
"""


class WrongSecretLimiter:
    def __init__(
        self,
        redis: aioredis.Redis,
        per_minute: int,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis = redis
        self.per_minute = per_minute
        self.monotonic = monotonic
        #: (client_id, address) -> monotonic end of the window that blocked it.
        self._blocked: dict[tuple[str, str], float] = {}

    def check(self, client_id: str, address: str | None) -> None:
        """Raise ``TooManyAttempts`` if this pair is over the limit (no store call)."""
        if address is None or not self._blocked:
            return
        until = self._blocked.get((client_id, address))
        if until is None:
            return
        left = until - self.monotonic()
        if left <= 0:
            del self._blocked[(client_id, address)]
            return
        raise TooManyAttempts("wrong-secret limit", retry_after=math.ceil(left))

    async def wrong_secret(self, client_id: str, address: str | None) -> None:
        """Count a wrong secret; raise ``TooManyAttempts`` once the pair is over the limit."""
        if address is None or self.per_minute <= 0:
            return
        key = keys.wrong_secrets(client_id, address)
        try:
            miss = secrets.token_hex(8)
            window_ms = WINDOW_SECONDS * 1000
            count, ttl_ms = await self.redis.eval(_COUNT_SCRIPT, 1, key, window_ms, miss)
        except (RedisError, OSError) as exc:
            log.warning("wrong secret not counted", extra={"fields": {"error": type(exc).__name__}})
            return
        if int(count) <= self.per_minute:
            return
        left = max(int(ttl_ms), 1) / 1000
        self._remember(client_id, address, left)
        raise TooManyAttempts("wrong-secret limit", retry_after=math.ceil(left))

    def _remember(self, client_id: str, address: str, left: float) -> None:
        now = self.monotonic()
        if len(self._blocked) >= MAX_BLOCKED:
            self._blocked = {pair: t for pair, t in self._blocked.items() if t > now}
            while len(self._blocked) >= MAX_BLOCKED:
                del self._blocked[next(iter(self._blocked))]
        self._blocked[(client_id, address)] = now + left
