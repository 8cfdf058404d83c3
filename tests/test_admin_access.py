"""The admin listener on the proxy's path: its access line, its 429 key, its metrics, its pool."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sidecar import tokenformat
from sidecar.ops.logs import JsonFormatter
from sidecar.store import keys
from tests.kits import processes
from tests.kits.admin import Harness, harness


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The access-log lines captured, as the JSON they are written as."""
    records = [r for r in caplog.records if r.name == "keystile.access"]
    return [json.loads(JsonFormatter().format(r)) for r in records]


def wrong_secret(admin: Harness, client_id: str) -> str:
    """A well-formed bearer token for ``client_id`` with a secret that is not its own."""
    return tokenformat.format_token(
        admin.config.tokens.prefix, client_id, tokenformat.new_client_secret()
    )


async def test_an_admin_call_leaves_one_access_line_with_caller_and_status(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Each admin call is one JSON access line (id kept and returned, caller, status), no secret."""
    async with harness(redis_url) as admin:
        await admin.user("alice")
        with caplog.at_level(logging.INFO, logger="keystile.access"):
            caplog.clear()
            made = await admin.call(
                "POST", "/tokens", json={"user": "alice"}, headers={"X-Request-Id": "adm-1"}
            )
            refused = await admin.call(
                "GET", "/tokens", token=wrong_secret(admin, tokenformat.new_client_id())
            )
    lines = access_lines(caplog)
    text = "\n".join(JsonFormatter().format(r) for r in caplog.records)

    assert made.status == 201 and made.headers["X-Request-Id"] == "adm-1"
    assert len(lines) == 2
    created, denied = lines
    assert (created["request_id"], created["user"], created["api"]) == ("adm-1", "root", "admin")
    assert (created["method"], created["path"], created["status"]) == (
        "POST",
        "/admin/v1/tokens",
        201,
    )
    assert created["outcome"] == "answered" and created["client_id"]
    assert created["latency_ms"] >= 0
    assert (denied["status"], denied["outcome"], denied["user"]) == (401, "refused", None)
    assert denied["request_id"] == refused.headers["X-Request-Id"]
    secret = admin.root.rsplit("_", 1)[-1]
    assert made.body["client_secret"] not in text and secret not in text


async def test_admin_wrong_secret_limit_is_keyed_by_the_trusted_hops_address(
    redis_url: str,
) -> None:
    """Behind proxy.trusted_hops, the admin 429 counts per forwarded address, not per peer."""
    limits = {"wrong_secrets_per_minute": 2, "refusal_delay_seconds": 0}
    async with harness(redis_url, proxy={"trusted_hops": 1}, limits=limits) as admin:
        await admin.user("alice")
        target = (await admin.token(user="alice"))["client_id"]

        async def guess(address: str) -> int:
            headers = {"X-Forwarded-For": address}
            bad = wrong_secret(admin, target)
            return (await admin.call("GET", "/me", token=bad, headers=headers)).status

        attacker = [await guess("203.0.113.7") for _ in range(3)]
        other = await guess("198.51.100.9")

    assert attacker == [401, 401, 429]
    assert other == 401


async def test_a_flood_of_creates_past_the_argon2_pool_gets_503_and_stores_nothing_extra(
    redis_url: str,
) -> None:
    """Creates beyond hashing.threads + queue_size get 503 overloaded, and leave no token."""
    # One thread, no queue, and a hash of some tenths of a second: the flood meets a full pool.
    hashing = {"memory_kib": 2048, "time_cost": 100, "parallelism": 1, "threads": 1}
    async with harness(redis_url, hashing={**hashing, "queue_size": 0}) as admin:
        await admin.user("alice")
        assert (await admin.call("GET", "/me")).status == 200  # the caller now cached
        before = await admin.store.redis.zcard(keys.TOKENS)
        replies = await asyncio.gather(
            *(admin.call("POST", "/tokens", json={"user": "alice"}) for _ in range(6))
        )
        stored = await admin.store.redis.zcard(keys.TOKENS)

    created = [r for r in replies if r.status == 201]
    refused = [r for r in replies if r.status != 201]
    assert created and refused
    assert {(r.status, r.body["error"]) for r in refused} == {(503, "overloaded")}
    assert all(int(r.headers["Retry-After"]) >= 1 for r in refused)
    assert stored - before == len(created)


def auth_counts(text: str) -> dict[tuple[str, str], float]:
    """``keystile_auth_total`` by (outcome, reason), from a scrape's text."""
    return {
        (sample.labels["outcome"], sample.labels["reason"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "keystile_auth_total"
    }


@pytest.mark.slow
async def test_serve_counts_admin_authentications_in_the_auth_metric(
    tmp_path: Path, redis_url: str
) -> None:
    """Under keystile serve, admin callers accepted and refused show in keystile_auth_total."""
    config = tmp_path / "keystile.toml"
    ports = processes.write_config(config, "http://127.0.0.1:9", redis_url)
    root = await processes.bootstrap(config)
    admin = f"http://127.0.0.1:{ports['admin']}/admin/v1/me"
    async with processes.serving(config, ports["proxy"]), aiohttp.ClientSession() as http:
        for token in (root, root, root[:-1] + ("0" if root[-1] != "0" else "1")):
            async with http.get(admin, headers={"Authorization": f"Bearer {token}"}) as reply:
                await reply.read()
        async with http.get(f"http://127.0.0.1:{ports['proxy']}/_keystile/metrics") as reply:
            counts = auth_counts(await reply.text())

    assert counts[("ok", "ok")] == 2
    assert counts[("invalid_token", "bad_checksum")] == 1
