"""The admin API through real HTTP against a real Redis: the token lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.adminkit import Harness, harness


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[Harness]:
    async with harness(redis_url) as running:
        yield running


async def test_created_token_passes_the_proxy(admin: Harness) -> None:
    """A token created through the admin API for a new user reaches the API it was given."""
    await admin.user("alice")

    created = await admin.token(user="alice", access={"orders": "read"})
    status = await admin.proxy_get("/orders/items", created["token"])

    assert status == 200
    assert created["user"] == "alice"
    assert created["status"] == "active"
