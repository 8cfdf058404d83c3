"""A store that has lived a little, for the tests of check, export and import."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from sidecar.store.management import AdminStore
from tests.kits.redis import make_config, seed_role, seed_token


@pytest.fixture
async def admin_store(redis_url: str) -> AsyncIterator[AdminStore]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield AdminStore(client)
    await client.aclose()


async def lived_in(store: AdminStore) -> list[str]:
    """A store every kind of admin write has touched; the client_ids of its live tokens."""
    config = make_config()
    await seed_role(store, "ops", {"orders": "read"})
    await seed_role(store, "spare", {"orders": "write"})
    kept = await seed_token(store, config, user="Alice", role="ops")
    revoked = await seed_token(store, config, user="Alice")
    deleted = await seed_token(store, config, user="bob", role="ops")
    await seed_token(store, config, user="carol")
    await store.patch_token(kept.token.client_id, {"description": "kept"}, "t")
    await store.regenerate_token(
        kept.token.client_id, "$argon2id$new", "2099-01-01T00:00:00Z", None, "t"
    )
    await store.revoke_tokens([revoked.token.client_id], "t")
    await store.delete_tokens([deleted.token.client_id], "t")
    await store.delete_user("carol", "t")
    await store.delete_role("spare", "t")
    return [kept.token.client_id, revoked.token.client_id]
