"""Past one Redis: a Sentinel failover followed, a Redis Cluster served (spec section 9)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis

from tests.kits import scale
from tests.kits.processes import bootstrap, serving, write_config
from tests.kits.servers import replicated
from tests.test_cli import orders_upstream

pytestmark = pytest.mark.slow


async def status(port: int, token: str) -> int:
    url = f"http://127.0.0.1:{port}/orders/1"
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as response:
        return response.status


def configure(config: Path, upstream: str, redis_lines: str) -> dict[str, int]:
    """``processes.write_config`` with ``redis_lines`` in place of its store line."""
    ports = write_config(config, upstream)
    text = config.read_text()
    start = text.index("[redis]\n") + len("[redis]\n")
    end = text.index("\n", start)
    config.write_text(text[:start] + redis_lines + text[end:])
    return ports


async def flushes(port: int, why: str) -> float:
    """The proxy's count of whole-cache drops for ``why``, from its metrics."""
    url = f"http://127.0.0.1:{port}/_keystile/metrics"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        text = await response.text()
    line = f'keystile_credential_cache_flushes_total{{why="{why}"}} '
    return sum(float(row[len(line) :]) for row in text.splitlines() if row.startswith(line))


@asynccontextmanager
async def deployment(config: Path, redis_lines: str, workers: int) -> AsyncIterator[dict[str, Any]]:
    """``keystile serve --workers N`` with these [redis] lines before an upstream; admin token."""
    upstream = await orders_upstream()
    ports = configure(config, str(upstream.make_url("")).rstrip("/"), redis_lines)
    try:
        admin_token = await bootstrap(config)
        async with serving(config, ports["proxy"], "--workers", str(workers)):
            yield {**ports, "admin_token": admin_token}
    finally:
        await upstream.close()


async def new_token(ports: dict[str, Any], user: str) -> dict[str, Any]:
    await post(ports, "/users", {"username": user})
    return await post(ports, "/tokens", {"user": user, "access": {"orders": "read"}})


async def post(ports: dict[str, Any], path: str, body: dict[str, Any]) -> dict[str, Any]:
    """An admin POST that answers 200 or 201, sent again while it answers 503 (a switch)."""
    url = f"http://127.0.0.1:{ports['admin']}/admin/v1{path}"
    headers = {"Authorization": f"Bearer {ports['admin_token']}"}
    deadline = time.monotonic() + 10
    async with aiohttp.ClientSession() as http:
        while True:
            async with http.post(url, json=body, headers=headers) as response:
                if response.status != 503 or time.monotonic() > deadline:
                    assert response.status in (200, 201), await response.text()
                    result: dict[str, Any] = await response.json()
                    return result
            await asyncio.sleep(0.1)


async def test_sentinel_failover_is_followed(tmp_path: Path) -> None:
    """Primary killed: 503s, never a wrong answer; then old tokens verify, writes go to the new."""
    with (
        replicated(tmp_path) as (primary, replica),
        scale.sentinel(tmp_path / "s", primary) as port,
    ):
        lines = f'sentinels = ["127.0.0.1:{port}"]\nsentinel_service = "{scale.SERVICE}"'
        async with deployment(tmp_path / "keystile.toml", lines, workers=2) as ports:
            before = await new_token(ports, "before")
            assert await status(ports["proxy"], before["token"]) == 200
            redis.Redis(port=primary.port).wait(1, 1000)  # replicated before the crash
            primary.kill()
            seen: list[int] = []
            deadline = time.monotonic() + 15
            while not seen or seen[-1] != 200 or 503 not in seen:
                assert time.monotonic() < deadline, f"never followed the failover: {seen[-5:]}"
                seen.append(await status(ports["proxy"], before["token"]))
                await asyncio.sleep(0.05)
            assert set(seen) <= {200, 503}, seen
            assert scale.role(replica) == "master"
            # The listener notices the new primary and drops every cache and the admin index.
            while await flushes(ports["proxy"], "store replaced") < 1:
                assert time.monotonic() < deadline, "the change of primary went unnoticed"
                await asyncio.sleep(0.1)
            after = await new_token(ports, "after")
            assert await status(ports["proxy"], after["token"]) == 200
            promoted = redis.Redis(port=replica.port, decode_responses=True)
            assert promoted.hget(f"{{ks}}:token:{after['client_id']}", "user") == "after"
            promoted.close()


async def test_cluster_serves_and_propagates_revocation(tmp_path: Path) -> None:
    """Via a node not owning {ks}: admin-made tokens verify; a revoke on one process reaches all."""
    with scale.cluster(tmp_path) as (owner, elsewhere, _):
        lines = f'url = "{elsewhere.url}"\ncluster = true'
        async with (
            deployment(tmp_path / "a.toml", lines, workers=1) as first,
            deployment(tmp_path / "b.toml", lines, workers=1) as second,
        ):
            made = await new_token(first, "svc")
            assert await status(second["proxy"], made["token"]) == 200  # cached on the second
            revoked = await post(first, f"/tokens/{made['client_id']}/revoke", {})
            await asyncio.sleep(0.3)  # far inside the cache's 300 s: heard from the store
            assert await status(second["proxy"], made["token"]) == 401
            # The replica registry's scripts run on the cluster too (one slot, like every key).
            assert "unknown" not in revoked["propagation"]
            assert revoked["propagation"]["replicas"] >= 1
            assert revoked["propagation"]["pending"] == []
            direct = redis.Redis(port=owner.port, decode_responses=True)
            assert direct.exists(f"{{ks}}:token:{made['client_id']}") == 1
            direct.close()
