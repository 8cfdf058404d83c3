"""POST /_keystile/leaks on a real proxy listener and a real redis (sidecar/proxy/leaks.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from sidecar import clock, tokenformat
from sidecar.proxy.state import VERIFIER
from sidecar.store import keys
from sidecar.store.management import AdminStore
from sidecar.verification.hashing import Argon2Hasher
from tests.kits.admin import harness
from tests.kits.proxy import Env, running, start_proxy
from tests.kits.redis import RedisProcess, seed_role, seed_token

FAST = {"answer_floor_seconds": 0}


@asynccontextmanager
async def leaks_env(redis_url: str, store: AdminStore, **leaks: Any) -> AsyncIterator[Env]:
    async with running(redis_url, store, leaks={**FAST, **leaks}) as env:
        yield env


async def post(url: str, body: Any = None, **options: Any) -> tuple[int, Any, Mapping[str, str]]:
    return await send(url, "POST", json=body, **options)


async def send(url: str, method: str, **options: Any) -> tuple[int, Any, Mapping[str, str]]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, f"{url}/_keystile/leaks", **options) as answer,
    ):
        text = await answer.text()
        parsed = await answer.json(content_type=None) if text else None
        return answer.status, parsed, answer.headers


async def status_on_proxy(env: Env, token: str) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{env.url}/orders/1", headers=env.bearer(token)) as answer,
    ):
        return answer.status


def forged(valid_checksum: bool = True) -> str:
    token = tokenformat.format_token("ks", tokenformat.new_client_id(), "S" * 32)
    return token if valid_checksum else token[:-1] + ("0" if token[-1] != "0" else "1")


async def notices(store: AdminStore) -> list[dict[str, str]]:
    return [fields for _, fields in await store.redis.xrange(keys.NOTICES)]


async def test_a_reported_real_token_is_revoked_at_once_recorded_and_noticed(
    redis_url: str, store: AdminStore
) -> None:
    """A real token reported: 202 {"received": 1}, 401 at once, history, audit, notice."""
    async with leaks_env(redis_url, store) as env:
        assert await status_on_proxy(env, env.tokens.full) == 200  # cached now
        status, body, headers = await post(env.url, {"tokens": [env.tokens.full]})
        assert (status, body) == (202, {"received": 1})
        assert headers["Cache-Control"] == "no-store"
        assert await status_on_proxy(env, env.tokens.full) == 401
        last = (await store.history(env.tokens.full_id))[-1]
        assert (last["actor"], last["action"]) == ("leak-report", "revoked")
        assert last["changes"]["status"] == ["active", "revoked"]
        newest = (await store.audit(None, 1))[0]
        assert (newest["actor"], newest["target"]) == ("leak-report", env.tokens.full_id)
        [notice] = await notices(store)
        assert notice["kind"] == "token.leaked" and notice["action"] == "revoke"
        assert (notice["client_id"], notice["user"]) == (env.tokens.full_id, "alice")


async def test_quarantine_keeps_the_token_authenticating_but_refused_everywhere(
    redis_url: str, store: AdminStore
) -> None:
    """With action quarantine: access {"*": "none"}, no role, 403 on every API, recorded."""
    async with leaks_env(redis_url, store, action="quarantine") as env:
        await seed_role(store, "ops", {"*": "full"})
        issued = await seed_token(store, env.proxy.config, user="carol", role="ops")
        assert await status_on_proxy(env, issued.bearer) == 200
        status, body, _ = await post(env.url, {"tokens": [issued.bearer]})
        assert (status, body) == (202, {"received": 1})
        async with aiohttp.ClientSession() as http:
            for path in ("/orders/1", "/billing/1", "/raw/1"):
                async with http.get(env.url + path, headers=env.bearer(issued.bearer)) as r:
                    assert r.status == 403
        token = await store.get_token(issued.token.client_id)
        assert token is not None and not token.revoked
        assert (dict(token.access), token.role) == ({"*": "none"}, None)
        last = (await store.history(issued.token.client_id))[-1]
        assert (last["actor"], last["action"]) == ("leak-report", "updated")
        assert (await notices(store))[0]["action"] == "quarantine"


async def test_a_quarantined_token_loses_self_service_until_an_admin_releases_it(
    redis_url: str,
) -> None:
    """Quarantined: /me answers 403 and the record says since when; an admin PATCH releases it."""
    async with harness(redis_url, leaks={**FAST, "action": "quarantine"}) as admin:
        await admin.user("carol")
        leaked = await admin.token(user="carol", access={"orders": "read"})
        other = await admin.token(user="carol", access={"orders": "read"})
        await post(admin.proxy_url, {"tokens": [leaked["token"]]})
        path = f"/me/tokens/{other['client_id']}/revoke"

        refused = await admin.call("POST", path, token=leaked["token"])
        record = (await admin.call("GET", f"/tokens/{leaked['client_id']}")).body
        patch = {"access": {"orders": "read"}}
        await admin.call("PATCH", f"/tokens/{leaked['client_id']}", json=patch)
        released = (await admin.call("GET", f"/tokens/{leaked['client_id']}")).body
        listed = await admin.call("GET", "/me/tokens", token=leaked["token"])

    assert refused.status == 403
    assert "quarantined" in refused.body["message"]
    assert record["quarantined_at"] and record["access"] == {"*": "none"}
    assert "quarantined_at" not in released and released["access"] == {"orders": "read"}
    assert listed.status == 200


async def test_fakes_get_the_answer_a_real_token_gets_and_change_nothing(
    redis_url: str, store: AdminStore
) -> None:
    """Bad checksum, unknown id, wrong secret, other prefix, junk: same 202 body, no change."""
    async with leaks_env(redis_url, store) as env:
        real_id = env.tokens.full_id
        wrong_secret = tokenformat.format_token("ks", real_id, "W" * 32)
        fakes = [forged(False), forged(True), wrong_secret, "gh_" + env.tokens.full[3:], "junk"]
        history = await store.history(real_id)
        generation = await store.generation()
        answers = [await post(env.url, {"tokens": [fake]}) for fake in fakes]
        assert {(status, str(body)) for status, body, _ in answers} == {(202, "{'received': 1}")}
        assert await status_on_proxy(env, env.tokens.full) == 200
        assert await store.history(real_id) == history
        assert await store.generation() == generation
        assert await notices(store) == []
        real = await post(env.url, {"tokens": [env.tokens.full]})
        assert real[:2] == answers[0][:2]


async def test_an_already_revoked_token_is_left_as_it_is(redis_url: str, store: AdminStore) -> None:
    """A revoked token reported again: 202, no new history entry, no notice."""
    async with leaks_env(redis_url, store) as env:
        await store.revoke_tokens([env.tokens.full_id], actor="admin")
        history = await store.history(env.tokens.full_id)
        status, _, _ = await post(env.url, {"tokens": [env.tokens.full]})
        assert status == 202
        assert await store.history(env.tokens.full_id) == history
        assert await notices(store) == []


async def test_an_expired_token_is_left_as_it_is(redis_url: str, store: AdminStore) -> None:
    """An expired token reported: 202, no history entry, no notice."""
    async with leaks_env(redis_url, store) as env:
        past = clock.to_rfc3339(clock.now() - timedelta(seconds=1))
        await store.patch_token(env.tokens.full_id, {"expires_at": past}, actor="admin")
        history = await store.history(env.tokens.full_id)
        status, _, _ = await post(env.url, {"tokens": [env.tokens.full]})
        assert status == 202
        assert await store.history(env.tokens.full_id) == history
        assert await notices(store) == []


async def test_another_replica_refuses_the_reported_token_at_once(
    redis_url: str, store: AdminStore
) -> None:
    """A report to one replica: another replica that had the token cached refuses it too."""
    async with leaks_env(redis_url, store) as env:
        other = await start_proxy(env.proxy.config, redis_url)
        try:
            replica = Env(env.upstream, other, env.tokens)
            assert await status_on_proxy(replica, env.tokens.full) == 200  # cached there
            await post(env.url, {"tokens": [env.tokens.full]})
            deadline = time.monotonic() + 1.0
            while await status_on_proxy(replica, env.tokens.full) != 401:
                assert time.monotonic() < deadline, "the other replica still accepts it"
                await asyncio.sleep(0.01)
        finally:
            await other.runner.cleanup()


async def test_a_mixed_report_contains_each_real_token_once_and_counts_every_token(
    redis_url: str, store: AdminStore
) -> None:
    """Real, fake and repeated tokens: every real one revoked once; received counts all."""
    async with leaks_env(redis_url, store) as env:
        second = (await seed_token(store, env.proxy.config, user="dave")).bearer
        tokens = [env.tokens.full, forged(), second, env.tokens.full, forged(False)]
        status, body, _ = await post(env.url, {"tokens": tokens})
        assert (status, body) == (202, {"received": 5})
        assert await status_on_proxy(env, env.tokens.full) == 401
        assert await status_on_proxy(env, second) == 401
        assert await status_on_proxy(env, env.tokens.read_orders) == 200
        assert len(await notices(store)) == 2
        async with aiohttp.ClientSession() as http, http.get(f"{env.url}/_keystile/metrics") as r:
            metrics = await r.text()
        assert "keystile_leak_reports_total 1.0" in metrics
        assert 'keystile_leaked_tokens_total{action="revoke"} 2.0' in metrics


async def test_github_partner_format_is_accepted(redis_url: str, store: AdminStore) -> None:
    """GitHub's array of {token, type, url, source} revokes the real token; the notice has url."""
    async with leaks_env(redis_url, store) as env:
        matches = [
            {
                "token": env.tokens.full,
                "type": "keystile_token",
                "url": "https://github.com/octocat/repo/blob/abc/config.txt",
                "source": "content",
            },
            {"token": forged(), "type": "keystile_token", "url": "https://x/y"},
        ]
        status, body, _ = await post(env.url, matches)
        assert (status, body) == (202, {"received": 2})
        assert await status_on_proxy(env, env.tokens.full) == 401
        [notice] = await notices(store)
        assert notice["url"] == "https://github.com/octocat/repo/blob/abc/config.txt"


async def test_the_old_secret_of_a_grace_period_counts_as_real(
    redis_url: str, store: AdminStore
) -> None:
    """A regenerated token's old secret, still in its grace period, gets the token revoked."""
    async with leaks_env(redis_url, store) as env:
        old = env.tokens.full
        new_hash = Argon2Hasher(env.proxy.config.hashing).hash("N" * 32)
        until = clock.to_rfc3339(clock.now() + timedelta(hours=1))
        expires = clock.to_rfc3339(clock.now() + timedelta(days=30))
        await store.regenerate_token(env.tokens.full_id, new_hash, expires, until, actor="t")
        assert await status_on_proxy(env, old) == 200
        await post(env.url, {"tokens": [old]})
        token = await store.get_token(env.tokens.full_id)
        assert token is not None and token.revoked


async def test_every_well_formed_token_costs_two_argon2_runs_real_or_not(
    redis_url: str, store: AdminStore
) -> None:
    """Unknown id, wrong secret, right secret, regenerated or not: two argon2 runs each."""
    async with leaks_env(redis_url, store) as env:
        pool = env.proxy.runner.app[VERIFIER].pool
        new_hash = Argon2Hasher(env.proxy.config.hashing).hash("N" * 32)
        until = clock.to_rfc3339(clock.now() + timedelta(hours=1))
        expires = clock.to_rfc3339(clock.now() + timedelta(days=30))
        await store.regenerate_token(env.tokens.full_id, new_hash, expires, until, actor="t")
        regenerated_wrong = tokenformat.format_token("ks", env.tokens.full_id, "W" * 32)
        plain_wrong = tokenformat.format_token("ks", env.tokens.read_orders.split("_")[1], "W" * 32)
        kinds = [forged(), regenerated_wrong, plain_wrong, env.tokens.read_orders]
        costs = []
        for token in kinds:
            before = pool.verifications
            await post(env.url, {"tokens": [token]})
            costs.append(pool.verifications - before)

    assert costs == [2, 2, 2, 2]
    assert await store.get_token(env.tokens.full_id) is not None


async def test_reports_are_limited_per_address_across_replicas(
    redis_url: str, store: AdminStore
) -> None:
    """Past rate_per_minute reports from one address, on either replica: 429 with Retry-After."""
    async with leaks_env(redis_url, store, rate_per_minute=3) as env:
        other = await start_proxy(env.proxy.config, redis_url)
        try:
            answers = [await post(url, {"tokens": ["junk"]}) for url in (env.url, other.url) * 2]
        finally:
            await other.runner.cleanup()
        assert [status for status, _, _ in answers] == [202, 202, 202, 429]
        _, body, headers = answers[-1]
        assert body["error"] == "too_many_requests"
        assert 0 < int(headers["Retry-After"]) <= 60


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tokens": "ks_x"}, "tokens"),
        ({"tokens": ["ks_x", 7]}, "tokens.1"),
        ([{"type": "keystile_token"}], "0.token"),
        ({"tokens": ["ks_x"] * 101}, "tokens"),
    ],
)
async def test_bad_reports_are_a_400_naming_the_field(env: Env, body: Any, field: str) -> None:
    """Wrong shapes and types, and too many tokens: 400 invalid_request naming the field."""
    status, answer, _ = await post(env.url, body)
    assert status == 400
    assert (answer["error"], answer["field"]) == ("invalid_request", field)


async def test_malformed_json_oversized_and_not_json_bodies_are_refused(env: Env) -> None:
    """Malformed JSON 400 naming tokens; over max_body_bytes 413; another media type 415."""
    headers = {"Content-Type": "application/json"}
    status, answer, _ = await post(env.url, data=b'{"tokens": [', headers=headers)
    assert (status, answer["field"]) == (400, "tokens")
    big = b'{"tokens": ["' + b"x" * 70000 + b'"]}'
    status, answer, _ = await post(env.url, data=big, headers=headers)
    assert (status, answer["error"]) == (413, "payload_too_large")
    status, _, _ = await post(env.url, data=b"tokens=ks_x", headers={"Content-Type": "text/plain"})
    assert status == 415


async def test_neither_answer_nor_log_holds_a_reported_token(
    redis_url: str, store: AdminStore, caplog: pytest.LogCaptureFixture
) -> None:
    """The answer and every log line hold no token or secret; the log names what was revoked."""
    async with leaks_env(redis_url, store) as env:
        secret = env.tokens.full_secret
        with caplog.at_level(logging.DEBUG):
            answers = [
                await post(env.url, {"tokens": [env.tokens.full, "ks_" + secret]}),
                await post(env.url, {"tokens": [env.tokens.full, 5]}),
            ]
        logged = "\n".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records)
        for _, body, headers in answers:
            assert secret not in str(body) and secret not in str(dict(headers))
        assert secret not in logged and env.tokens.full not in logged
        [line] = [r for r in caplog.records if r.name == "keystile.leaks"]
        assert line.fields["contained"] == [env.tokens.full_id]  # type: ignore[attr-defined]
        assert line.fields["received"] == 2  # type: ignore[attr-defined]


async def test_the_answer_waits_for_the_floor_whatever_the_tokens(
    redis_url: str, store: AdminStore
) -> None:
    """With answer_floor_seconds, even a token refused by its checksum waits for the floor."""
    async with leaks_env(redis_url, store, answer_floor_seconds=0.3) as env:
        started = time.monotonic()
        status, _, _ = await post(env.url, {"tokens": [forged(False)]})
        assert status == 202
        assert time.monotonic() - started >= 0.3


async def test_disabled_is_a_404_and_other_methods_a_405(redis_url: str, store: AdminStore) -> None:
    """leaks.enabled = false answers 404; a GET on the endpoint is a 405 naming POST."""
    async with leaks_env(redis_url, store) as env:
        status, _, headers = await send(env.url, "GET")
        assert (status, headers["Allow"]) == (405, "POST")
    async with leaks_env(redis_url, store, enabled=False) as env:
        status, body, _ = await post(env.url, {"tokens": ["ks_x"]})
        assert (status, body["error"]) == (404, "not_found")


async def test_without_the_store_a_report_is_a_503_and_nothing_is_done(
    private_redis: RedisProcess,
) -> None:
    """The store down: 503 with Retry-After (fail closed), never a 202 for unprocessed work."""
    client = aioredis.Redis.from_url(private_redis.url, decode_responses=True)
    async with running(private_redis.url, AdminStore(client), leaks=FAST) as env:
        private_redis.stop()
        status, body, headers = await post(env.url, {"tokens": [env.tokens.full]})
    await client.aclose()
    assert (status, body["error"]) == (503, "unavailable")
    assert "Retry-After" in headers
