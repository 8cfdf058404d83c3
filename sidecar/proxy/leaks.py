"""``POST /_keystile/leaks``: a secret scanner reports leaked tokens (spec section 10).

    request -> per-address limit (429) -> body (415, 413) -> report (400, pure)
            -> LeakResponder (verify, contain) -> floor -> 202 {"received": N}

No credential: the report itself is the proof (a token that verifies is one
anybody could now use). The answer is the same whatever the tokens were:
202 with the number of tokens in the report, never which were real, never a
token; the log line says how many were received and the client_ids that
were contained, never a token or a secret. Every report is answered no
sooner than ``leaks.answer_floor_seconds`` after it arrived, so that the
write a real token costs does not show in the answer's timing (the equal
work before it is ``sidecar.verification.leaks``). docs/leaks.md.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from sidecar.config import Config
from sidecar.errors import BodyTooLarge, KeystileError, NotFound
from sidecar.leakreport import read_report
from sidecar.ops.metrics import OWN_API
from sidecar.proxy.errorbodies import error_response
from sidecar.proxy.state import CONFIG, outcome_of
from sidecar.store.durability import Durability
from sidecar.store.leaks import LeakStore
from sidecar.verification.leaks import Contained, LeakResponder, ReportLimiter
from sidecar.verification.runtime import Verification

PATH = "/_keystile/leaks"
log = logging.getLogger("keystile.leaks")


class LeakDesk:
    """The endpoint's parts in one process: responder, limiter, counters."""

    def __init__(self, config: Config, shared: Verification, registry: CollectorRegistry) -> None:
        store = LeakStore(shared.redis, Durability.from_config(config.redis))
        # This process's cache drops a contained token before the report is answered.
        shared.watch(store)
        prefix, action = config.tokens.prefix, config.leaks.action
        self.responder = LeakResponder(store, shared.pool, prefix, action)
        self.limiter = ReportLimiter(shared.redis, config.leaks.rate_per_minute)
        self.reports = Counter(
            "keystile_leak_reports", "Leak reports accepted (answered 202)", registry=registry
        )
        self.leaked = Counter(
            "keystile_leaked_tokens",
            "Reported tokens that verified and were contained, by action (revoke, quarantine)",
            ["action"],
            registry=registry,
        )

    def count(self, contained: list[Contained]) -> None:
        self.reports.inc()
        for token in contained:
            self.leaked.labels(token.action).inc()


DESK = web.AppKey("leak_desk", LeakDesk)


async def report(request: web.Request) -> web.StreamResponse:
    arrived = time.monotonic()
    outcome = outcome_of(request)
    outcome.api, outcome.outcome = OWN_API, "own"
    config = request.app[CONFIG]
    if not config.leaks.enabled:
        raise NotFound("leak reports are disabled (leaks.enabled)")
    if request.method != "POST":
        raise web.HTTPMethodNotAllowed(request.method, ["POST"])
    desk = request.app[DESK]
    await desk.limiter.admit(outcome.client)
    try:
        raw = await _body(request, config.leaks.max_body_bytes)
    except BodyTooLarge as error:
        # The rest of the body is still on the wire: never read it as a next request.
        response = error_response(error, config.proxy.retry_after)
        response.force_close()
        return response
    tokens = read_report(raw, config.leaks.max_tokens)
    contained = await desk.responder.respond(tokens)
    desk.count(contained)
    _log(outcome.client, len(tokens), contained)
    await asyncio.sleep(max(0.0, arrived + config.leaks.answer_floor_seconds - time.monotonic()))
    return web.json_response({"received": len(tokens)}, status=202, headers=NO_STORE)


NO_STORE = {"Cache-Control": "no-store"}


async def _body(request: web.Request, limit: int) -> bytes:
    """At most ``limit`` bytes of a JSON body; 413 past it, 415 if it is not JSON."""
    too_large = BodyTooLarge(f"a leak report is at most {limit} bytes", field="tokens")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    if not _is_json(request.content_type):
        raise NotJson("the body must be JSON (Content-Type: application/json)", field="tokens")
    body = bytearray()
    async for chunk in request.content.iter_chunked(16384):
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


class NotJson(KeystileError):
    status = 415
    code = "unsupported_media_type"
    public_message = "the body must be JSON"

    def message(self) -> str:
        return self.reason


def _log(client: str, received: int, contained: list[Contained]) -> None:
    fields = {
        "client": client,
        "received": received,
        "contained": [token.client_id for token in contained],
        # Where each was found, when the report said (GitHub's match url): never a secret.
        "urls": {token.client_id: token.url for token in contained if token.url},
        "action": contained[0].action if contained else None,
    }
    # A contained token is news for its owner and the operator: a warning, not info.
    level = logging.WARNING if contained else logging.INFO
    log.log(level, "leak report", extra={"fields": fields})
