"""Typed keys of the proxy app's shared state and of one request's record.

Kept apart from ``sidecar.proxy.app`` so the handlers (proxy, forward-auth,
WebSocket) and the middlewares can share them without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from aiohttp import web

from sidecar.config import Config
from sidecar.ops.metrics import NO_API, ProxyMetrics
from sidecar.proxy.http1client import UpstreamPool
from sidecar.store.redis_store import RedisStore
from sidecar.verification.authentication import Authenticator
from sidecar.verification.usage import UsageRecorder
from sidecar.verification.verifier import Verifier

CONFIG = web.AppKey("config", Config)
REDIS_URL = web.AppKey("redis_url", str)
STORE = web.AppKey("store", RedisStore)
VERIFIER = web.AppKey("verifier", Verifier)
CLIENT = web.AppKey("client", aiohttp.ClientSession)  # WebSocket handshakes
POOL = web.AppKey("pool", UpstreamPool)  # every other upstream exchange
METRICS = web.AppKey("metrics", ProxyMetrics)
USAGE = web.AppKey("usage", UsageRecorder)
#: The one authentication path, made once the verifier and usage exist.
AUTHENTICATOR = web.AppKey("authenticator", Authenticator)


@dataclass(slots=True)
class Outcome:
    """What the access log and the metrics say about one request; filled as it goes."""

    request_id: str
    api: str = NO_API
    client_id: str = ""
    user: str = ""
    #: "forwarded", "allowed" (forward-auth), "refused", "failed" or "own" (ops endpoints).
    outcome: str = "refused"
    #: Why it was refused or failed, in our words (never request bytes).
    reason: str = ""
    #: The client's address (peer, or per proxy.trusted_hops): logs and the 429 limit.
    client: str = ""


OUTCOME = web.RequestKey("outcome", Outcome)


def outcome_of(request: web.Request) -> Outcome:
    """The request's Outcome (``accesslog.middleware`` sets it on every request)."""
    return request[OUTCOME]
