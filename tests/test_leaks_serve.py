"""The leak-report endpoint of a real ``keystile serve --workers 2``: every worker refuses
a reported token, and the report limit is one count for all of them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.kits import processes
from tests.kits.processes import admin_post, bootstrap, serving

pytestmark = pytest.mark.slow


async def fresh(method: str, url: str, **options: Any) -> int:
    """The status of one request on a new connection (so the workers take turns)."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        http.request(method, url, **options) as response,
    ):
        return response.status


async def checks(proxy: str, headers: dict[str, str]) -> set[int]:
    """The forward-auth answers for ``headers`` over 8 new connections."""
    url = f"{proxy}/_keystile/check"
    return {await fresh("GET", url, headers=headers) for _ in range(8)}


async def test_a_report_reaches_every_worker_and_the_limit_is_shared(
    tmp_path: Path, redis_url: str
) -> None:
    """One report: 401 on both workers' check; the 4th report of 3 a minute is a 429 anywhere."""
    config = tmp_path / "keystile.toml"
    ports = processes.write_config(config, "http://127.0.0.1:9", redis_url)
    extra = "\n[leaks]\nanswer_floor_seconds = 0\nrate_per_minute = 3\n"
    config.write_text(config.read_text() + extra)
    proxy = f"http://127.0.0.1:{ports['proxy']}"
    async with serving(config, ports["proxy"], "--workers", "2"):
        root = await bootstrap(config)
        await admin_post(ports["admin"], "/users", root, {"username": "svc"})
        created = await admin_post(
            ports["admin"], "/tokens", root, {"user": "svc", "access": {"orders": "read"}}
        )
        check = {"Authorization": f"Bearer {created['token']}", "X-Original-URI": "/orders/1"}
        assert await checks(proxy, check) == {200}  # cached on both workers

        leaks = f"{proxy}/_keystile/leaks"
        assert await fresh("POST", leaks, json={"tokens": [created["token"]]}) == 202

        deadline = time.monotonic() + 2.0
        while await checks(proxy, check) != {401}:
            assert time.monotonic() < deadline, "a worker still accepts the reported token"
            await asyncio.sleep(0.01)
        answers = [await fresh("POST", leaks, json={"tokens": ["junk"]}) for _ in range(3)]
        assert answers == [202, 202, 429]
