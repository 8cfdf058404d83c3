"""Authenticating a caller: the one path of the proxy, forward-auth and the admin API.

    headers -> credentials (pure) -> Verifier (cache -> limit -> store -> argon2) -> Verified

Whatever the answer, it is recorded the same way on every listener: the
``keystile_auth_total`` metric, the request's access-log record (who, or why
not), and for a refused guess the tarpit (``limits.tarpit``). An accepted
token is a use of it (``last_used_at``, batched), and a use of an old secret
during a regeneration's grace is counted by client address and user agent
(``graceuse``, batched too). The wrong-secret limit (429)
is keyed by the record's ``client``: the address the access log shows, the
peer or, behind ``proxy.trusted_hops`` proxies, the one they forwarded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from sidecar import credentials
from sidecar.config import Config
from sidecar.credentials import HeaderValues, Presented
from sidecar.errors import KeystileError, MissingCredential, StoreUnavailable
from sidecar.ops.metrics import ProxyMetrics
from sidecar.verification import limits
from sidecar.verification.usage import UsageRecorder
from sidecar.verification.verifier import GraceVerified, Verified, Verifier


class Record(Protocol):
    """What authentication writes into a request's access-log record (``proxy.state.Outcome``)."""

    client: str
    client_id: str
    user: str
    outcome: str
    reason: str


#: How a request without a credential may still be authenticated.
Otherwise = Callable[[], Awaitable[Verified]]


# Not frozen: the proxy makes one per request, and a frozen dataclass's __init__
# (object.__setattr__ per field) costs 2 µs where this one costs a fraction of that.
@dataclass(slots=True)
class Authenticator:
    """The process's verifier, with the metric, the access record, the tarpit and usage."""

    config: Config
    verifier: Verifier
    usage: UsageRecorder
    metrics: ProxyMetrics

    async def authenticate(
        self, headers: HeaderValues, record: Record, otherwise: Otherwise | None = None
    ) -> Verified:
        """The identity behind the request's credential headers, or the refusal, recorded.

        ``otherwise`` answers a request that presents no credential at all (the
        admin console's session cookie); its answer is recorded alike.
        """
        config = self.config
        try:
            presented = credentials.read_request(headers, config.tokens.prefix, config.headers)
        except MissingCredential as error:
            if otherwise is None:
                await self.refused(error, record)
                raise
            return await self._otherwise(otherwise, record)
        except KeystileError as error:
            await self.refused(error, record)
            raise
        return await self.verify(presented, record, headers)

    async def _otherwise(self, otherwise: Otherwise, record: Record) -> Verified:
        try:
            verified = await otherwise()
        except KeystileError as error:
            # Not held in the tarpit: a session cookie is no guess at a secret.
            self.note_refusal(error, record)
            raise
        return self.accepted(verified, record)

    async def verify(
        self, presented: Presented, record: Record, headers: HeaderValues | None = None
    ) -> Verified:
        """``presented`` (read from ``headers``, or from a sign-in body) through the verifier."""
        try:
            verified = await self.verifier.verify(presented, record.client)
        except KeystileError as error:
            await self.refused(error, record)
            raise
        if verified.old_secret:  # a regeneration's grace: evidence of who has not switched
            self._old_secret_used(verified, record, headers)
        return self.accepted(verified, record)

    def _old_secret_used(
        self, verified: Verified, record: Record, headers: HeaderValues | None
    ) -> None:
        note = self.verifier.on_old_secret
        if note is None or not isinstance(verified, GraceVerified):
            return
        agents = headers.getall("User-Agent", []) if headers is not None else []
        note(verified.client_id, verified.grace_until, record.client, agents[0] if agents else "")

    def accepted(self, verified: Verified, record: Record) -> Verified:
        """Count and note an identity that passed (also one a console session found)."""
        self.metrics.auth_ok.inc()
        record.client_id = verified.client_id
        record.user = verified.username
        self.usage.note(verified.client_id)
        return verified

    async def refused(self, error: KeystileError, record: Record) -> None:
        """Count and note a refusal; hold a guess in the tarpit. The caller raises ``error``."""
        self.note_refusal(error, record)
        await limits.tarpit(error, self.config.limits.refusal_delay_seconds)

    def note_refusal(self, error: KeystileError, record: Record) -> None:
        if isinstance(error, StoreUnavailable):
            self.metrics.store_errors.inc()
        self.metrics.count_refusal(error.code, error.reason)
        record.outcome = "refused"
        record.reason = error.reason
