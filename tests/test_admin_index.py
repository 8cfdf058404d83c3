"""The token listing's in-memory index (admin/tokenindex.py) stays true to Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from admin.app import build_admin_app
from tests.adminkit import Harness, harness
from tests.support import free_port, seed_token


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[Harness]:
    async with harness(redis_url) as running:
        await running.user("alice")
        yield running


async def _list(session: aiohttp.ClientSession, base: str, token: str, query: str) -> list[str]:
    headers = {"Authorization": f"Bearer {token}"}
    async with session.get(f"{base}/admin/v1/tokens?{query}", headers=headers) as resp:
        body = await resp.json()
    return [item["client_id"] for item in body["items"]]


async def test_a_second_admin_process_sees_every_change_at_once(
    admin: Harness, redis_url: str
) -> None:
    """Changes made through one admin listener show in another's list on its next call."""
    other = TestServer(build_admin_app(admin.config, redis_url), port=free_port())
    await other.start_server()
    base = str(other.make_url("")).rstrip("/")
    try:
        before = await _list(admin.session, base, admin.root, "user=alice")
        created = await admin.token(user="alice", description="fresh")
        after_create = await _list(admin.session, base, admin.root, "q=fresh")
        await admin.call("PATCH", f"/tokens/{created['client_id']}", json={"description": "x"})
        after_patch = await _list(admin.session, base, admin.root, "q=fresh")
        await admin.call("DELETE", "/users/alice")
        after_delete = await _list(admin.session, base, admin.root, "")
    finally:
        await other.close()

    assert before == []
    assert after_create == [created["client_id"]]
    assert after_patch == []
    assert created["client_id"] not in after_delete


async def test_the_index_starts_over_when_the_store_is_emptied(admin: Harness) -> None:
    """After a FLUSHALL (a new Redis), the list shows what the new store holds, not the old."""
    created = await admin.token(user="alice")
    assert created["client_id"] in await _list(admin.session, admin.admin_url, admin.root, "")
    await admin.store.redis.flushall()
    new_root = await _seed_root(admin)

    listed = await _list(admin.session, admin.admin_url, new_root, "")

    assert created["client_id"] not in listed
    assert len(listed) == 1


async def _seed_root(admin: Harness) -> str:
    issued = await seed_token(admin.store, admin.config, user="root", access={"admin": "full"})
    return issued.bearer


async def test_last_used_order_follows_the_proxys_writes(redis_url: str) -> None:
    """A token used through the proxy comes first in order=last_used_at (nulls last) soon after."""
    async with harness(redis_url, tokens={"last_used_interval": 0.05}) as admin:
        await admin.user("alice")
        used = await admin.token(user="alice", access={"orders": "read"})
        await admin.token(user="alice", access={"orders": "read"})
        await _list(admin.session, admin.admin_url, admin.root, "order=last_used_at")

        assert await admin.proxy_get("/orders/x", str(used["token"])) == 200
        first = None
        for _ in range(60):
            await asyncio.sleep(0.05)
            listed = await _list(admin.session, admin.admin_url, admin.root, "order=last_used_at")
            first = listed[0]
            if first == used["client_id"]:
                break

    assert first == used["client_id"]
