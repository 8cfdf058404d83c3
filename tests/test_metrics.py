"""Operations: Prometheus metrics and the JSON access log of the proxy."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from sidecar.ops.logs import JsonFormatter
from sidecar.store.management import AdminStore
from tests.kits.proxy import Env, running
from tests.kits.redis import RedisProcess


async def scrape(env: Env) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of /_keystile/metrics as ``{(name, labels): value}``."""
    async with aiohttp.ClientSession() as http, http.get(f"{env.url}/_keystile/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        text = await r.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def labels(**pairs: str) -> frozenset[tuple[str, str]]:
    return frozenset(pairs.items())


METRICS_PAGE = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"


async def test_docs_name_every_metric_with_its_type(env: Env) -> None:
    """docs/metrics.md's table has a row for every metric served, of its type, and no other."""
    async with aiohttp.ClientSession() as http, http.get(f"{env.url}/_keystile/metrics") as r:
        text = await r.text()
    served = {
        (family.name + ("_total" if family.type == "counter" else ""), family.type)
        for family in text_string_to_metric_families(text)
        if not family.name.endswith("_created")  # in-process only, the page says
    }
    rows = re.findall(r"^\| `(keystile_\w+)` \| (\w+) \|", METRICS_PAGE.read_text(), re.M)

    assert set(rows) == served


async def test_metrics_count_requests_auth_outcomes_and_upstream(env: Env) -> None:
    """Requests by API/method class/status, auth by reason, latency and upstream errors."""
    bad = env.tokens.full[:-1] + ("0" if env.tokens.full[-1] != "0" else "1")
    async with aiohttp.ClientSession() as http:
        await (await http.get(f"{env.url}/orders/1", headers=env.bearer())).read()
        await (await http.post(f"{env.url}/orders/1", headers=env.bearer())).read()
        await (await http.get(f"{env.url}/orders/1", headers=env.bearer(bad))).read()
        await (await http.get(f"{env.url}/dead/1", headers=env.bearer())).read()
    samples = await scrape(env)
    requests = "keystile_requests_total"
    assert samples[(requests, labels(api="orders", method_class="safe", status="200"))] == 1
    assert samples[(requests, labels(api="orders", method_class="unsafe", status="200"))] == 1
    assert samples[(requests, labels(api="-", method_class="safe", status="401"))] == 1
    assert samples[(requests, labels(api="dead", method_class="safe", status="502"))] == 1
    assert samples[("keystile_auth_total", labels(outcome="ok", reason="ok"))] == 3
    bad_checksum = labels(outcome="invalid_token", reason="bad_checksum")
    assert samples[("keystile_auth_total", bad_checksum)] == 1
    latency_count = ("keystile_upstream_latency_seconds_count", labels(api="orders"))
    assert samples[latency_count] == 2
    errors = ("keystile_upstream_errors_total", labels(api="dead", kind="unavailable"))
    assert samples[errors] == 1


async def test_metrics_count_store_errors(private_redis: RedisProcess) -> None:
    """A credential check that cannot reach the store is counted as a store error."""
    client = aioredis.Redis.from_url(private_redis.url, decode_responses=True)
    async with running(private_redis.url, AdminStore(client)) as env:
        private_redis.stop()
        async with aiohttp.ClientSession() as http:
            await (await http.get(f"{env.url}/orders/1", headers=env.bearer())).read()
        samples = await scrape(env)
    await client.aclose()
    assert samples[("keystile_store_errors_total", labels())] >= 1
    unavailable = [v for (_, ls), v in samples.items() if ("outcome", "unavailable") in ls]
    assert sum(unavailable) >= 1


async def test_access_log_has_one_json_line_per_request_without_secrets(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """One access line per request with id, client, user, API, status, outcome; no secret."""
    async with aiohttp.ClientSession() as http:
        headers = {**env.bearer(), "X-Request-Id": "req-1"}
        await (await http.get(f"{env.url}/orders/1?q=secret-query", headers=headers)).read()
        wrong = {"X-Client-Id": env.tokens.full_id, "X-Client-Secret": "x" * 32}
        with caplog.at_level(logging.INFO, logger="keystile.access"):
            caplog.clear()
            await (await http.get(f"{env.url}/orders/1?q=secret-query", headers=headers)).read()
            await (await http.get(f"{env.url}/orders/2", headers=wrong)).read()
    lines = [
        json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == "keystile.access"
    ]
    assert len(lines) == 2
    allowed, refused = lines
    assert allowed["request_id"] == "req-1"
    assert (allowed["client_id"], allowed["user"], allowed["api"]) == (
        env.tokens.full_id,
        "alice",
        "orders",
    )
    assert (allowed["method"], allowed["status"], allowed["outcome"]) == ("GET", 200, "forwarded")
    assert allowed["path"] == "/orders/1" and allowed["latency_ms"] >= 0
    assert (refused["status"], refused["outcome"]) == (401, "refused")
    text = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert env.tokens.full_secret not in text and "x" * 32 not in text
    assert "secret-query" not in text


async def test_client_that_goes_away_is_logged_as_499(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that disconnects before its answer still leaves one access line, status 499."""
    with caplog.at_level(logging.INFO, logger="keystile.access"):
        _, writer = await asyncio.open_connection("127.0.0.1", env.proxy.port)
        writer.write(
            f"GET /orders/slow HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {env.tokens.full}\r\n\r\n".encode()
        )
        await writer.drain()
        await asyncio.wait_for(env.upstream.arrived.wait(), 3)
        writer.close()
        await asyncio.wait_for(env.upstream.cancelled.wait(), 3)
        await asyncio.sleep(0.05)
    lines = [r for r in caplog.records if r.name == "keystile.access"]
    assert [r.__dict__["fields"]["status"] for r in lines] == [499]
