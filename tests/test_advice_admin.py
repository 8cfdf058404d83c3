"""Admin calls as uses of the API ``admin`` (admin/views_shared.py, admin/auth.py): counted
per method class for bearer tokens and console sessions, never for /me, and the advice
they lead to, with its guard against a token locking itself out of the admin API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from typing import Any

import pytest

from tests.kits.admin import Harness, harness


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[Harness]:
    async with harness(redis_url, tokens={"last_used_interval": 0.1}) as running:
        await running.user("alice")
        yield running


async def _admin_uses(admin: Harness, client_id: str, total: int) -> dict[str, Any]:
    """The counted ``admin`` uses once there are ``total`` (the flusher runs every 0.1 s)."""
    for _ in range(60):
        reply = await admin.call("GET", f"/tokens/{client_id}/usage")
        item: dict[str, Any] = next(i for i in reply.body["items"] if i["api"] == "admin")
        if item["safe"] + item["unsafe"] >= total:
            return item
        await asyncio.sleep(0.05)
    raise AssertionError(f"admin uses not counted: {item}")


async def _session_get(admin: Harness, token: str, path: str) -> int:
    """A console sign-in with ``token``, then one GET of the admin API with its cookie only."""
    async with admin.session.post(
        admin.admin_url + "/console/v1/session", json={"token": token}
    ) as r:
        cookie = SimpleCookie(r.headers["Set-Cookie"])["keystile_console"].value
    headers = {"Cookie": f"keystile_console={cookie}"}
    async with admin.session.get(admin.admin_url + "/admin/v1" + path, headers=headers) as resp:
        return resp.status


async def test_admin_calls_are_counted_and_decide_the_admin_level(admin: Harness) -> None:
    """Reads (bearer or session) propose admin read, a change keeps full, only /me calls none."""
    full = {"admin": "full"}
    reader, writer, idle = [await admin.token(user="alice", access=full) for _ in range(3)]
    assert (await admin.call("GET", "/me", token=idle["token"])).status == 200  # not a use
    assert (await admin.call("GET", "/users", token=reader["token"])).status == 200
    assert await _session_get(admin, reader["token"], "/tokens") == 200
    body = {"username": "bob"}
    assert (await admin.call("POST", "/users", json=body, token=writer["token"])).status == 201

    read = await _admin_uses(admin, reader["client_id"], 2)
    wrote = await _admin_uses(admin, writer["client_id"], 1)
    unused = await _admin_uses(admin, idle["client_id"], 0)
    proposed = {}
    for token in (reader, writer, idle):
        reply = await admin.call("GET", f"/tokens/{token['client_id']}/advice")
        proposed[token["client_id"]] = reply.body["proposed"]["admin"]

    assert (read["safe"], read["unsafe"], wrote["unsafe"]) == (2, 0, 1)
    assert (unused["safe"], unused["unsafe"]) == (0, 0)
    assert [proposed[t["client_id"]] for t in (reader, writer, idle)] == ["read", "full", "none"]


async def test_a_token_cannot_apply_advice_that_takes_its_own_full_admin(admin: Harness) -> None:
    """Self-apply leaving the caller without admin full is a 409 naming access.admin; root may."""
    own = await admin.token(user="alice", access={"admin": "full", "orders": "read"})
    path = f"/tokens/{own['client_id']}"
    assert (await admin.call("GET", path + "/advice", token=own["token"])).status == 200
    await _admin_uses(admin, own["client_id"], 1)

    refused = await admin.call("POST", path + "/advice/apply", token=own["token"])
    kept = await admin.call("GET", path)
    applied = await admin.call("POST", path + "/advice/apply")

    assert (refused.status, refused.body["field"]) == (409, "access.admin")
    assert kept.body["access"] == {"admin": "full", "orders": "read"}
    assert applied.body["access"] == {"orders": "none", "billing": "none", "admin": "read"}


async def test_apply_that_changes_no_level_records_nothing(admin: Harness) -> None:
    """Every level already the one needed: apply answers the record, unchanged, no history."""
    token = await admin.token(user="alice", access={"orders": "read"})
    assert await admin.proxy_get("/orders/1", token["token"]) == 200
    for _ in range(60):
        usage = await admin.call("GET", f"/tokens/{token['client_id']}/usage")
        if usage.body["items"][0]["safe"]:
            break
        await asyncio.sleep(0.05)
    before = await admin.call("GET", f"/tokens/{token['client_id']}/history")

    reply = await admin.call("POST", f"/tokens/{token['client_id']}/advice/apply")
    after = await admin.call("GET", f"/tokens/{token['client_id']}/history")

    assert reply.status == 200 and reply.body["access"] == {"orders": "read"}
    assert len(after.body["items"]) == len(before.body["items"])
