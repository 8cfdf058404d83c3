"""Least privilege from observed use, through real HTTP on a real proxy and Redis: uses
counted per API and method class, /usage, /advice and /advice/apply."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sidecar import clock
from sidecar.store import keys
from tests.kits.admin import Harness, harness

FAST = {"last_used_interval": 0.1}


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[Harness]:
    async with harness(redis_url, tokens=FAST) as running:
        await running.user("alice")
        yield running


async def _send(admin: Harness, method: str, path: str, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    async with admin.session.request(method, admin.proxy_url + path, headers=headers) as resp:
        await resp.read()
        return resp.status


async def _usage_once_counted(admin: Harness, client_id: str, total: int) -> dict[str, Any]:
    """The /usage answer once ``total`` uses are in it (the flusher runs every 0.1 s)."""
    for _ in range(60):
        reply = await admin.call("GET", f"/tokens/{client_id}/usage")
        body: dict[str, Any] = reply.body
        if sum(item["safe"] + item["unsafe"] for item in body["items"]) >= total:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"uses not counted: {body}")


async def test_uses_are_counted_per_api_and_method_class(admin: Harness) -> None:
    """GETs count as safe and a POST as unsafe, per API, under today's UTC day."""
    token = await admin.token(user="alice", access={"orders": "full", "billing": "read"})
    for method, path in [("GET", "/orders/1"), ("HEAD", "/orders/2"), ("POST", "/orders")]:
        assert await _send(admin, method, path, token["token"]) == 200
    assert await _send(admin, "GET", "/billing/x", token["token"]) == 200
    assert await _send(admin, "DELETE", "/billing/x", token["token"]) == 403  # not a use

    usage = await _usage_once_counted(admin, token["client_id"], 4)

    today = clock.now().date().isoformat()
    assert usage["items"] == [
        {"api": "orders", "safe": 2, "unsafe": 1, "last_day": today},
        {"api": "billing", "safe": 1, "unsafe": 0, "last_day": today},
        {"api": "admin", "safe": 0, "unsafe": 0, "last_day": None},
    ]
    assert usage["window_days"] == 30 and usage["until"] == today
    assert {(d["day"], d["api"]) for d in usage["days"]} == {(today, "orders"), (today, "billing")}


async def test_forward_auth_answer_counts_as_a_use(admin: Harness) -> None:
    """A 200 from /_keystile/check counts the original method, here an unsafe DELETE."""
    token = await admin.token(user="alice", access={"orders": "full"})
    headers = {
        "Authorization": f"Bearer {token['token']}",
        "X-Original-Method": "DELETE",
        "X-Original-URI": "/orders/7",
    }
    async with admin.session.get(admin.proxy_url + "/_keystile/check", headers=headers) as resp:
        assert resp.status == 200

    usage = await _usage_once_counted(admin, token["client_id"], 1)

    assert usage["items"][0] == {**usage["items"][0], "api": "orders", "safe": 0, "unsafe": 1}


async def test_advice_tightens_full_to_read_and_unused_to_none(admin: Harness) -> None:
    """Only GETs on orders and nothing on billing: full becomes read, and billing none."""
    token = await admin.token(user="alice", access={"orders": "full", "billing": "full"})
    assert await _send(admin, "GET", "/orders/1", token["token"]) == 200
    await _usage_once_counted(admin, token["client_id"], 1)

    reply = await admin.call("GET", f"/tokens/{token['client_id']}/advice?days=7")

    assert reply.status == 200
    assert reply.body["window_days"] == 7
    assert reply.body["current"] == {"orders": "full", "billing": "full"}
    assert reply.body["proposed"] == {"orders": "read", "billing": "none", "admin": "none"}
    assert reply.body["changes"] == {"orders": ["full", "read"], "billing": ["full", "none"]}
    assert reply.body["uses"]["orders"] == {"safe": 1, "unsafe": 0}


async def test_proposal_names_every_api_with_none_where_never_called(admin: Harness) -> None:
    """Used only for POST /orders: proposed keeps orders full and states billing none."""
    token = await admin.token(user="alice", access={"orders": "full", "billing": "full"})
    assert await _send(admin, "POST", "/orders", token["token"]) == 200
    await _usage_once_counted(admin, token["client_id"], 1)

    reply = await admin.call("GET", f"/tokens/{token['client_id']}/advice")
    proposed = reply.body["proposed"]

    assert (proposed["orders"], proposed["billing"], proposed["admin"]) == ("full", "none", "none")
    assert reply.body["changes"] == {"billing": ["full", "none"]}


async def test_advice_never_widens_and_unused_token_gets_none(admin: Harness) -> None:
    """Counted unsafe uses on a read-only API keep read; a token never used proposes none."""
    token = await admin.token(user="alice", access={"orders": "read", "billing": "full"})
    uses = {(token["client_id"], "orders", False): 5, (token["client_id"], "billing", True): 0}
    await admin.store.add_uses(clock.now().date().isoformat(), uses, 90)

    reply = await admin.call("GET", f"/tokens/{token['client_id']}/advice")

    assert reply.body["proposed"] == {"orders": "read", "billing": "none", "admin": "none"}
    assert reply.body["changes"] == {"billing": ["full", "none"]}


async def test_apply_is_a_recorded_edit_the_proxy_enforces_at_once(admin: Harness) -> None:
    """Apply writes the proposal as an "updated" history entry by the caller; DELETE is now 403."""
    token = await admin.token(user="alice", access={"orders": "full"})
    assert await _send(admin, "GET", "/orders/1", token["token"]) == 200
    await _usage_once_counted(admin, token["client_id"], 1)

    reply = await admin.call("POST", f"/tokens/{token['client_id']}/advice/apply")
    history = await admin.call("GET", f"/tokens/{token['client_id']}/history")

    after = {"orders": "read", "billing": "none", "admin": "none"}
    assert reply.status == 200 and reply.body["access"] == after
    last = history.body["items"][-1]
    assert (last["action"], last["actor"]) == ("updated", "root")
    assert last["changes"]["access"] == [{"orders": "full"}, after]
    assert await _send(admin, "DELETE", "/orders/1", token["token"]) == 403
    assert await _send(admin, "GET", "/orders/1", token["token"]) == 200


async def test_apply_with_a_stale_expected_proposal_is_a_409(admin: Harness) -> None:
    """A DELETE allowed after the operator saw the advice changes it: apply refuses, no change."""
    token = await admin.token(user="alice", access={"orders": "full"})
    assert await _send(admin, "GET", "/orders/1", token["token"]) == 200
    await _usage_once_counted(admin, token["client_id"], 1)
    seen = await admin.call("GET", f"/tokens/{token['client_id']}/advice")
    assert await _send(admin, "DELETE", "/orders/1", token["token"]) == 200
    await _usage_once_counted(admin, token["client_id"], 2)

    body = {"expected": seen.body["proposed"]}
    reply = await admin.call("POST", f"/tokens/{token['client_id']}/advice/apply", json=body)
    after = await admin.call("GET", f"/tokens/{token['client_id']}")

    assert reply.status == 409 and reply.body["field"] == "expected"
    assert after.body["access"] == {"orders": "full"}


@pytest.mark.parametrize("days", ["0", "91", "abc", "-1", "7.5"])
async def test_bad_days_is_a_400_naming_days(admin: Harness, days: str) -> None:
    """A window outside 1..tokens.usage_days is a 400 naming days, on every endpoint."""
    token = await admin.token(user="alice")
    path = f"/tokens/{token['client_id']}"

    usage = await admin.call("GET", f"{path}/usage?days={days}")
    advice = await admin.call("GET", f"{path}/advice?days={days}")
    applied = await admin.call("POST", f"{path}/advice/apply", json={"days": 0})

    for reply in (usage, advice, applied):
        assert (reply.status, reply.body["field"]) == (400, "days")


async def test_unknown_token_is_a_404(admin: Harness) -> None:
    """Usage, advice and apply of a client_id no token has answer 404."""
    path = "/tokens/" + "A" * 22
    for method, tail in [("GET", "/usage"), ("GET", "/advice"), ("POST", "/advice/apply")]:
        reply = await admin.call(method, path + tail)
        assert (reply.status, reply.body["error"]) == (404, "not_found")


async def test_usage_goes_with_its_token_and_its_user(admin: Harness) -> None:
    """Deleting a token, or its user, deletes its counted uses."""
    one = await admin.token(user="alice", access={"orders": "read"})
    two = await admin.token(user="alice", access={"orders": "read"})
    for token in (one, two):
        assert await _send(admin, "GET", "/orders/1", token["token"]) == 200
        await _usage_once_counted(admin, token["client_id"], 1)
    redis = admin.store.redis

    await admin.call("DELETE", f"/tokens/{one['client_id']}")
    after_token = await redis.exists(keys.token_uses(one["client_id"]))
    await admin.call("DELETE", "/users/alice")
    after_user = await redis.exists(keys.token_uses(two["client_id"]))

    assert (after_token, after_user) == (0, 0)


async def test_self_service_reads_only_its_own_users_tokens(admin: Harness) -> None:
    """/me/tokens/{id}/usage and /advice answer for the caller's user, 404 for another's."""
    mine = await admin.token(user="alice", access={"orders": "read"})
    await admin.user("bob")
    theirs = await admin.token(user="bob", access={"orders": "read"})

    own = await admin.call("GET", f"/me/tokens/{mine['client_id']}/advice", token=mine["token"])
    other = await admin.call("GET", f"/me/tokens/{theirs['client_id']}/usage", token=mine["token"])

    assert own.status == 200 and own.body["changes"] == {"orders": ["read", "none"]}
    assert other.status == 404
