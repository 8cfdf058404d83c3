"""The token listing's in-memory index (admin/tokenindex.py) stays true to Redis."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestServer

from admin.app import build_admin_app
from admin.queries import TokenQuery
from admin.search import search
from admin.state import INDEX
from admin.tokenindex import TokenIndex
from sidecar import clock, tokenformat
from sidecar.proxy.app import build_proxy_app
from sidecar.records import Token
from sidecar.store import keys
from sidecar.store.management import AdminStore
from tests.kits.admin import Harness, harness
from tests.kits.redis import free_port, make_config, seed_token


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


async def _seed_many(redis_url: str, count: int, user: str) -> None:
    """``count`` tokens nobody can present, written in pipelines as the store writes them.

    By hand rather than through ``create_token``: one transaction per token would make
    seeding tens of thousands of them the slowest part of the suite.
    """
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    now = clock.now()
    template = Token(
        client_id="",
        user=user,
        secret_hash="$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
        created_at=clock.to_rfc3339(now),
        expires_at=clock.to_rfc3339(clock.add_months(now, 6)),
        access={"orders": "read"},
    ).to_fields()
    try:
        for start in range(0, count, 5000):
            ids = [tokenformat.new_client_id() for _ in range(min(5000, count - start))]
            async with client.pipeline(transaction=False) as pipe:
                for index, client_id in enumerate(ids):
                    fields = dict(template, client_id=client_id, description=f"filler {index}")
                    pipe.hset(keys.token(client_id), mapping=fields)
                pipe.zadd(keys.TOKENS, {client_id: 1 for client_id in ids})
                pipe.sadd(keys.ISSUED_IDS, *ids)
                pipe.sadd(keys.user_tokens(user), *ids)
                await pipe.execute()
    finally:
        await client.aclose()


async def _empty(_: web.Request) -> web.Response:
    return web.json_response({})


async def test_a_proxied_request_is_answered_while_a_large_index_loads(redis_url: str) -> None:
    """Half-way through loading 40,000 tokens, the proxy sharing the loop still answers at once."""
    upstream = web.Application()
    upstream.router.add_get("/{tail:.*}", _empty)
    upstream_server = TestServer(upstream, port=free_port())
    await upstream_server.start_server()
    api = {"name": "orders", "prefix": "/orders", "upstream": str(upstream_server.make_url("/"))}
    config = make_config(redis_url, [api])
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    used = await seed_token(AdminStore(client), config, user="alice", access={"orders": "read"})
    root = await seed_token(AdminStore(client), config, user="root", access={"admin": "full"})
    await client.aclose()
    await _seed_many(redis_url, 40_000, "alice")
    proxy = TestServer(build_proxy_app(config, redis_url), port=free_port())
    admin = TestServer(build_admin_app(config, redis_url), port=free_port())
    await proxy.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            proxied = str(proxy.make_url("/orders/x"))
            bearer = {"Authorization": f"Bearer {used.bearer}"}
            async with session.get(proxied, headers=bearer) as first:
                assert first.status == 200  # now cached
            await admin.start_server()  # starts loading the index, on this same loop
            index = admin.app[INDEX]
            base = str(admin.make_url("")).rstrip("/")
            listing = asyncio.ensure_future(_list_total(session, base, root.bearer))
            async with asyncio.timeout(60):  # a load that never gets there fails, not hangs
                # Polled: the load's progress is an attribute, no event to wait on.
                while index.generation < 0 and (index.loading or (0, 1))[0] * 2 < 40_002:  # noqa: ASYNC110
                    await asyncio.sleep(0)
            read_before = index.loading

            async with session.get(proxied, headers=bearer) as during:
                status = during.status
                read_after = index.loading
                listed_already = listing.done()
            total = await listing
    finally:
        await admin.close()
        await proxy.close()
        await upstream_server.close()

    assert read_before is not None  # half the tokens read, the rest to come
    assert status == 200
    assert read_after is not None  # answered before the load finished
    assert not listed_already  # the list waits for the whole index
    assert total == 40_002


async def _list_total(session: aiohttp.ClientSession, base: str, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    async with session.get(f"{base}/admin/v1/tokens?limit=1", headers=headers) as resp:
        body = await resp.json()
    return int(body["total"])


async def test_loaded_rows_are_left_to_the_collector_and_still_follow_changes(
    store: AdminStore,
) -> None:
    """No garbage collection walks the loaded rows, and changes made later still show."""
    admin_store = AdminStore(store.redis)
    config = make_config()
    seeded = [await seed_token(admin_store, config, user="alice") for _ in range(4)]
    kept, patched, revoked, deleted = (issued.token.client_id for issued in seeded)
    index = TokenIndex(admin_store, last_used_interval=60.0)
    try:
        loaded = list(await index.current())
        walked = {id(tracked) for tracked in gc.get_objects()}  # what a collection walks
        await admin_store.patch_token(patched, {"description": "Changed"}, actor="test")
        await admin_store.revoke_tokens([revoked], actor="test")
        await admin_store.delete_tokens([deleted], actor="test")
        added = (await seed_token(admin_store, config, user="alice")).token.client_id
        rows = await index.current()
    finally:
        await index.close()
    now = clock.to_rfc3339(clock.now())

    assert len(loaded) == 4
    assert not any(id(row) in walked for row in loaded)
    assert [row.client_id for row in rows] == sorted([kept, patched, revoked, added])
    assert search(rows, TokenQuery(q="changed"), {}, now) == (1, [patched])
    assert search(rows, TokenQuery(status="revoked"), {}, now) == (1, [revoked])
