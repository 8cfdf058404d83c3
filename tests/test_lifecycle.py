"""The admin writes of the store (sidecar/store/tokens.py, people.py) against a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from sidecar.store import keys
from sidecar.store.changes import Conflict, Missing
from sidecar.store.management import AdminStore
from tests.kits.redis import make_config, seed_role, seed_token


@pytest.fixture
async def admin_store(redis_url: str) -> AsyncIterator[AdminStore]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield AdminStore(client)
    await client.aclose()


async def test_concurrent_changes_each_land_with_their_history(admin_store: AdminStore) -> None:
    """Twenty concurrent PATCHes: each is one history entry, and the last one is the state."""
    issued = await seed_token(admin_store, make_config())
    client_id = issued.token.client_id

    await asyncio.gather(
        *(admin_store.patch_token(client_id, {"description": f"d{n}"}, "t") for n in range(20))
    )
    history = await admin_store.history(client_id)
    (token,) = await admin_store.tokens([client_id])

    updates = [entry for entry in history if entry["action"] == "updated"]
    assert len(updates) == 20
    assert token is not None
    assert updates[-1]["changes"]["description"][1] == token.description
    olds = [entry["changes"]["description"][0] for entry in updates]
    news = [entry["changes"]["description"][1] for entry in updates]
    assert olds[1:] == news[:-1]  # each change saw the one before it


async def test_delete_keeps_the_issued_id_and_history(admin_store: AdminStore) -> None:
    """A deleted token's id stays issued (never reissued) and its history stays readable."""
    issued = await seed_token(admin_store, make_config())
    client_id = issued.token.client_id

    await admin_store.delete_tokens([client_id], "t")

    assert await admin_store.redis.sismember(keys.ISSUED_IDS, client_id)
    assert [e["action"] for e in await admin_store.history(client_id)] == ["created", "deleted"]
    with pytest.raises(Missing):
        await admin_store.delete_tokens([client_id], "t")


async def test_delete_user_clears_every_index(admin_store: AdminStore) -> None:
    """Deleting a user removes its tokens from the token, user and role indexes at once."""
    await seed_role(admin_store, "ops", {"orders": "read"})
    issued = await seed_token(admin_store, make_config(), role="ops")

    deleted = await admin_store.delete_user("alice", "t")

    assert deleted == 1
    assert await admin_store.redis.zcard(keys.TOKENS) == 0
    assert not await admin_store.redis.exists(keys.user_tokens("alice"))
    assert not await admin_store.redis.sismember(keys.role_tokens("ops"), issued.token.client_id)
    await admin_store.delete_role("ops", "t")


async def test_revoking_an_owned_token_of_another_user_is_missing(
    admin_store: AdminStore,
) -> None:
    """With owner, another user's token is answered as missing and stays active."""
    issued = await seed_token(admin_store, make_config(), user="bob")

    with pytest.raises(Missing):
        await admin_store.revoke_tokens([issued.token.client_id], "alice", owner="alice")
    (token,) = await admin_store.tokens([issued.token.client_id])

    assert token is not None
    assert not token.revoked


async def test_a_role_in_use_cannot_be_deleted(admin_store: AdminStore) -> None:
    """delete_role refuses a role a token has, with no field (a 409, not a 400)."""
    await seed_role(admin_store, "ops", {"orders": "read"})
    await seed_token(admin_store, make_config(), role="ops")

    with pytest.raises(Conflict) as caught:
        await admin_store.delete_role("ops", "t")

    assert caught.value.field is None
    assert await admin_store.get_role("ops") is not None
