"""Rotation with evidence: the old secret's uses during a regeneration's grace, counted per
client through the real proxy and a real Redis, shown on the token's record, and end-grace."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from multidict import CIMultiDict

from sidecar import clock
from sidecar.ops.metrics import ProxyMetrics
from sidecar.proxy.state import Outcome
from sidecar.records import Token
from sidecar.store import graceuses
from sidecar.store.management import AdminStore
from sidecar.verification.authentication import Authenticator
from sidecar.verification.graceuse import MAX_USER_AGENT, GraceUseRecorder
from sidecar.verification.hashing import Argon2Hasher
from sidecar.verification.usage import UsageRecorder
from sidecar.verification.verifier import GraceVerified
from tests.kits.admin import Harness, harness
from tests.kits.redis import make_config, seed_token
from tests.kits.verify import CHEAP, CountingHasher, make_verifier, presented


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[Harness]:
    async with harness(redis_url, proxy={"trusted_hops": 1}) as running:
        yield running


async def _rotated(admin: Harness) -> tuple[str, str, str]:
    """A token of alice regenerated with a 10-minute grace: (client_id, old, new)."""
    await admin.user("alice")
    created = await admin.token(user="alice", access={"orders": "read"})
    path = f"/tokens/{created['client_id']}/regenerate"
    regenerated = await admin.call("POST", path, json={"grace_seconds": 600})
    return created["client_id"], created["token"], regenerated.body["token"]


async def _get(admin: Harness, token: str, agent: str, forwarded: str | None = None) -> int:
    sent = {"Authorization": f"Bearer {token}", "User-Agent": agent}
    if forwarded:
        sent["X-Forwarded-For"] = forwarded
    async with admin.session.get(admin.proxy_url + "/orders/1", headers=sent) as resp:
        await resp.read()
        return resp.status


async def _grace_after_flush(admin: Harness, client_id: str, uses: int) -> Any:
    """The record's grace once ``uses`` old-secret uses were written (a flush is 1 s)."""
    for _ in range(60):
        grace = (await admin.call("GET", f"/tokens/{client_id}")).body["grace"]
        if grace["old_secret_uses"] >= uses:
            return grace
        await asyncio.sleep(0.1)
    raise AssertionError(f"old-secret uses not written: {grace}")


async def test_old_secret_uses_are_counted_per_client_and_new_ones_not(admin: Harness) -> None:
    """Each client of the old secret is counted (address per trusted_hops, user agent)."""
    client_id, old, new = await _rotated(admin)

    statuses = [
        await _get(admin, old, "bot/1"),
        await _get(admin, old, "bot/1"),
        await _get(admin, new, "bot/1"),
        await _get(admin, new, "fresh/3"),
        await _get(admin, old, "cron/2", forwarded="203.0.113.7"),
    ]
    grace = await _grace_after_flush(admin, client_id, 3)

    assert statuses == [200] * 5
    assert grace["old_secret_uses"] == 3
    assert grace["until"] == (await admin.store.get_token(client_id)).grace_until  # type: ignore[union-attr]
    clients = [(c["address"], c["user_agent"], c["uses"]) for c in grace["clients"]]
    assert sorted(clients) == [("127.0.0.1", "bot/1", 2), ("203.0.113.7", "cron/2", 1)]
    assert grace["last_old_use_at"] == grace["clients"][0]["last_used_at"]
    assert [c["last_used_at"] for c in grace["clients"]] == sorted(
        (c["last_used_at"] for c in grace["clients"]), reverse=True
    )


async def test_end_grace_stops_the_old_secret_at_once_and_is_recorded(admin: Harness) -> None:
    """end-grace: the old secret is a 401 right away, grace is null, history says so."""
    client_id, old, new = await _rotated(admin)
    assert await _get(admin, old, "bot/1") == 200
    until = (await admin.call("GET", f"/tokens/{client_id}")).body["grace"]["until"]

    ended = await admin.call("POST", f"/tokens/{client_id}/end-grace")
    history = (await admin.call("GET", f"/tokens/{client_id}/history")).body["items"]

    assert ended.status == 200
    assert ended.body["grace"] is None
    assert ended.body["propagation"]["pending"] == []
    assert await _get(admin, old, "bot/1") == 401
    assert await _get(admin, new, "bot/1") == 200
    assert (await admin.call("GET", f"/tokens/{client_id}")).body["grace"] is None
    assert history[-1]["action"] == "updated"
    assert history[-1]["changes"] == {"grace_until": [until, None]}


async def test_a_regeneration_with_a_grace_answers_its_grace_block(admin: Harness) -> None:
    """Regenerate's answer has the record's grace block, empty; without a grace, null."""
    await admin.user("alice")
    created = await admin.token(user="alice")
    path = f"/tokens/{created['client_id']}/regenerate"

    graced = (await admin.call("POST", path, json={"grace_seconds": 600})).body
    plain = (await admin.call("POST", path, json={})).body

    assert graced["grace"] == {
        "until": graced["grace_until"],
        "old_secret_uses": 0,
        "last_old_use_at": None,
        "clients": [],
    }
    assert plain["grace"] is None


async def test_an_old_secret_use_shows_on_the_record_well_within_a_second(admin: Harness) -> None:
    """The evidence is written just after a use, not with the once-a-second usage batch."""
    client_id, old, _ = await _rotated(admin)
    await asyncio.sleep(1.1)  # past any flush the regeneration's own requests started
    assert await _get(admin, old, "bot/1") == 200

    await asyncio.sleep(0.4)
    grace = (await admin.call("GET", f"/tokens/{client_id}")).body["grace"]

    assert grace["old_secret_uses"] == 1


async def test_end_grace_without_a_grace_is_a_conflict(admin: Harness) -> None:
    """No grace period open: 409 saying so; an unknown token: 404; lists carry no grace."""
    await admin.user("alice")
    created = await admin.token(user="alice")

    reply = await admin.call("POST", f"/tokens/{created['client_id']}/end-grace")
    unknown = await admin.call("POST", "/tokens/AAAAAAAAAAAAAAAAAAAAAA/end-grace")
    listed = (await admin.call("GET", "/tokens")).body["items"]

    assert reply.status == 409
    assert "no grace period open" in reply.body["message"]
    assert unknown.status == 404
    assert (await admin.call("GET", f"/tokens/{created['client_id']}")).body["grace"] is None
    assert all("grace" not in item for item in listed)


async def test_own_token_grace_can_be_ended_by_its_user_only(admin: Harness) -> None:
    """/me/tokens/{id}/end-grace ends the caller's own grace; another user's is a 404."""
    client_id, old, new = await _rotated(admin)
    await admin.user("bob")
    bob = await admin.token(user="bob")

    theirs = await admin.call("POST", f"/me/tokens/{client_id}/end-grace", token=bob["token"])
    own = await admin.call("POST", f"/me/tokens/{client_id}/end-grace", token=new)

    assert theirs.status == 404
    assert own.status == 200 and own.body["grace"] is None
    assert await _get(admin, old, "bot/1") == 401


async def _regenerated_with_grace(store: AdminStore, token: Token) -> str:
    """Regenerate ``token`` in the store with an hour's grace; answer its grace_until."""
    until = clock.to_rfc3339(clock.now() + timedelta(hours=1))
    new_hash = Argon2Hasher(CHEAP).hash("n" * 32)
    await store.regenerate_token(token.client_id, new_hash, token.expires_at, until, "test")
    return until


async def test_an_old_secret_answered_from_the_cache_is_counted_too(store: AdminStore) -> None:
    """The second use, a cache hit, is counted: the cached identity knows it is the old secret."""
    cfg = make_config()
    issued = await seed_token(store, cfg)
    client_id = issued.token.client_id
    until = await _regenerated_with_grace(store, issued.token)
    verifier = make_verifier(store, CountingHasher(CHEAP))
    recorder = GraceUseRecorder(store)
    verifier.on_old_secret = recorder.note
    authenticator = Authenticator(cfg, verifier, UsageRecorder(store, 60), ProxyMetrics())
    headers = CIMultiDict({"User-Agent": "bot/1"})

    first, second = [
        await authenticator.verify(
            presented(client_id, issued.client_secret), Outcome("r", client="10.0.0.1"), headers
        )
        for _ in range(2)
    ]
    await recorder.flush()
    grace = await graceuses.read(store, client_id, until)

    assert isinstance(second, GraceVerified) and first.old_secret
    assert verifier.hits == 1
    assert grace["old_secret_uses"] == 2
    assert grace["clients"][0]["address"] == "10.0.0.1"


async def test_distinct_clients_are_bounded_and_user_agents_cut(store: AdminStore) -> None:
    """Past MAX_CLIENTS distinct clients (in memory and in the store) uses go to one bucket."""
    issued = await seed_token(store, make_config())
    client_id = issued.token.client_id
    until = await _regenerated_with_grace(store, issued.token)
    recorder = GraceUseRecorder(store)

    for batch in (range(60), range(60, 130)):
        for n in batch:
            recorder.note(client_id, until, "10.0.0.1", f"agent-{n}/" + "x" * 300)
        await recorder.flush()
    grace = await graceuses.read(store, client_id, until)

    bucket = [c for c in grace["clients"] if c["address"] is None]
    named = [c for c in grace["clients"] if c["address"] is not None]
    assert len(named) == graceuses.MAX_CLIENTS
    assert bucket[0]["uses"] == 130 - graceuses.MAX_CLIENTS
    assert grace["old_secret_uses"] == 130
    assert all(len(c["user_agent"]) == MAX_USER_AGENT for c in named)
