"""Admin callers, verified as the proxy verifies them: a use on the admin API is a use."""

from __future__ import annotations

import asyncio

from tests.kits.admin import harness


async def test_a_token_used_only_on_the_admin_api_gets_its_last_used_at(redis_url: str) -> None:
    """GET /me with a token sets that token's last_used_at, batched as the proxy's writes."""
    async with harness(redis_url, tokens={"last_used_interval": 0.05}) as admin:
        await admin.user("alice")
        made = await admin.token(user="alice", access={"admin": "read"})
        before = await admin.call("GET", f"/tokens/{made['client_id']}")

        used = await admin.call("GET", "/me", token=made["token"])
        seen = None
        for _ in range(100):
            await asyncio.sleep(0.05)
            seen = (await admin.call("GET", f"/tokens/{made['client_id']}")).body["last_used_at"]
            if seen is not None:
                break

    assert before.body["last_used_at"] is None
    assert used.status == 200
    assert seen is not None and seen >= before.body["created_at"]
