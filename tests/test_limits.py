"""Wrong-secret limits on a real redis-server: 429 per client_id and address, never for others."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from admin.app import build_admin_app
from sidecar import tokenformat
from sidecar.errors import InvalidToken, TooManyAttempts
from sidecar.proxy.app import build_proxy_app
from sidecar.proxy.errorbodies import error_response
from sidecar.store.management import AdminStore
from tests.kits.redis import make_config, seed_token
from tests.kits.verify import CHEAP, CountingHasher, make_verifier, presented, wrong

ATTACKER = "203.0.113.7"
HOLDER = "198.51.100.20"


async def test_too_many_wrong_secrets_from_one_address_get_429(store: AdminStore) -> None:
    """Past the per-minute number, wrong secrets from one address get 429 with Retry-After."""
    issued = await seed_token(store, make_config())
    verifier = make_verifier(store, CountingHasher(CHEAP), wrong_secrets_per_minute=3)
    for _ in range(3):
        with pytest.raises(InvalidToken):
            await verifier.verify(wrong(issued.token.client_id), ATTACKER)

    with pytest.raises(TooManyAttempts) as limited:
        await verifier.verify(wrong(issued.token.client_id), ATTACKER)

    assert limited.value.status == 429
    assert 1 <= limited.value.retry_after <= 60
    verifier.pool.close()


async def test_blocked_address_costs_no_argon2(store: AdminStore) -> None:
    """Once a pair is over the limit its attempts are refused before argon2 runs."""
    issued = await seed_token(store, make_config())
    hasher = CountingHasher(CHEAP)
    verifier = make_verifier(store, hasher, wrong_secrets_per_minute=2)
    for _ in range(3):
        with pytest.raises((InvalidToken, TooManyAttempts)):
            await verifier.verify(wrong(issued.token.client_id), ATTACKER)
    spent = hasher.verifies

    for _ in range(20):
        with pytest.raises(TooManyAttempts):
            await verifier.verify(wrong(issued.token.client_id), ATTACKER)

    assert hasher.verifies == spent == 3
    verifier.pool.close()


async def test_real_holder_from_another_address_is_not_locked_out(store: AdminStore) -> None:
    """A flood from one address leaves the holder's right secret, and wrong ones, from another."""
    issued = await seed_token(store, make_config())
    verifier = make_verifier(store, CountingHasher(CHEAP), wrong_secrets_per_minute=2)
    for _ in range(3):
        with pytest.raises((InvalidToken, TooManyAttempts)):
            await verifier.verify(wrong(issued.token.client_id), ATTACKER)

    right = presented(issued.token.client_id, issued.client_secret)
    assert (await verifier.verify(right, HOLDER)).username == "alice"
    with pytest.raises(InvalidToken):
        await verifier.verify(wrong(issued.token.client_id), HOLDER)
    verifier.pool.close()


async def test_count_is_shared_by_every_process(store: AdminStore) -> None:
    """Two replicas on one store add to one count: the limit does not multiply with workers."""
    issued = await seed_token(store, make_config())
    first = make_verifier(store, CountingHasher(CHEAP), wrong_secrets_per_minute=3)
    second = make_verifier(store, CountingHasher(CHEAP), wrong_secrets_per_minute=3)
    for verifier in (first, first, second):
        with pytest.raises(InvalidToken):
            await verifier.verify(wrong(issued.token.client_id), ATTACKER)

    with pytest.raises(TooManyAttempts):
        await second.verify(wrong(issued.token.client_id), ATTACKER)
    first.pool.close()
    second.pool.close()


def test_429_answer_carries_retry_after_and_json() -> None:
    """The 429 answer says when to retry and has the JSON error body of every refusal."""
    response = error_response(TooManyAttempts("wrong-secret limit", retry_after=42))

    assert response.status == 429
    assert response.headers["Retry-After"] == "42"
    body = json.loads(response.text or "")
    assert body == {
        "error": "too_many_attempts",
        "message": "too many failed attempts; retry later",
    }


async def test_proxy_answers_429_to_the_flooding_address_only(
    aiohttp_client: Any, redis_url: str, store: AdminStore
) -> None:
    """Through the proxy: the flooding address gets 429 with Retry-After, another gets in."""
    config = make_config(
        redis_url,
        [{"name": "orders", "prefix": "/orders", "upstream": "http://127.0.0.1:9"}],
        proxy={"trusted_hops": 1},
        limits={"wrong_secrets_per_minute": 2},
    )
    issued = await seed_token(store, config, access={"orders": "read"})
    proxy = await aiohttp_client(build_proxy_app(config, redis_url))
    forged = tokenformat.format_token("ks", issued.token.client_id, "w" * 32)

    async def check(token: str, address: str) -> tuple[int, str | None]:
        headers = {
            "Authorization": f"Bearer {token}",
            "X-Original-URI": "/orders/1",
            "X-Forwarded-For": address,
        }
        async with proxy.get("/_keystile/check", headers=headers) as response:
            return response.status, response.headers.get("Retry-After")

    answers = [await check(forged, ATTACKER) for _ in range(3)]

    assert [status for status, _ in answers] == [401, 401, 429]
    assert 1 <= int(answers[2][1] or 0) <= 60
    assert await check(issued.bearer, HOLDER) == (200, None)
    assert (await check(forged, ATTACKER))[0] == 429


async def test_guessed_credentials_wait_and_revoked_ones_do_not(
    aiohttp_client: Any, redis_url: str, store: AdminStore
) -> None:
    """A forged or unknown credential waits for its 401; a revoked token gets it at once."""
    config = make_config(
        redis_url,
        [{"name": "orders", "prefix": "/orders", "upstream": "http://127.0.0.1:9"}],
        limits={"refusal_delay_seconds": 2},
    )
    issued = await seed_token(store, config, access={"orders": "read"})
    await AdminStore(store.redis).revoke_tokens([issued.token.client_id], actor="test")
    proxy = await aiohttp_client(build_proxy_app(config, redis_url))
    unknown = tokenformat.format_token("ks", "U" * 22, "s" * 32)

    async def timed(token: str) -> tuple[int, float]:
        began = asyncio.get_running_loop().time()
        headers = {"Authorization": f"Bearer {token}"}
        async with proxy.get("/orders/1", headers=headers) as response:
            return response.status, asyncio.get_running_loop().time() - began

    status, waited = await timed(unknown)
    assert status == 401 and waited >= 2
    status, waited = await timed(issued.bearer)
    assert status == 401 and waited < 1.5


async def test_admin_api_holds_guesses_too(
    aiohttp_client: Any, redis_url: str, store: AdminStore
) -> None:
    """The admin listener applies the same tarpit: an unknown token waits for its 401."""
    config = make_config(redis_url, limits={"refusal_delay_seconds": 2})
    admin = await aiohttp_client(build_admin_app(config, redis_url, warm_index=False))
    unknown = tokenformat.format_token("ks", "U" * 22, "s" * 32)
    began = asyncio.get_running_loop().time()
    async with admin.get("/admin/v1/me", headers={"Authorization": f"Bearer {unknown}"}) as answer:
        assert answer.status == 401
    assert asyncio.get_running_loop().time() - began >= 2
