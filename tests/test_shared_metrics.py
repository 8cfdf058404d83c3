"""``/_keystile/metrics`` under ``keystile serve --workers N``, as real processes.

Each scrape reaches one worker; every one must answer the sum over all of
them, and no counter may go down, also when a worker dies and is replaced.
"""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import time
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from admin.workers import START_WINDOW
from tests import processkit
from tests.processkit import admin_post, bootstrap, serving

pytestmark = pytest.mark.slow

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
#: Counter samples: these may never go down between two scrapes.
COUNTER_SUFFIXES = ("_total", "_count", "_sum", "_bucket")


async def scrape(port: int) -> Samples:
    """Every sample of one scrape, over a new connection (so any worker may answer)."""
    connector = aiohttp.TCPConnector(force_close=True)
    url = f"http://127.0.0.1:{port}/_keystile/metrics"
    async with aiohttp.ClientSession(connector=connector) as http, http.get(url) as response:
        assert response.status == 200
        text = await response.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def checked_requests(samples: Samples) -> float:
    """``keystile_requests_total`` summed over every label, the metrics endpoints' own left out."""
    return sum(
        value
        for (name, labels), value in samples.items()
        if name == "keystile_requests_total" and ("api", "_keystile") not in labels
    )


def went_down(before: Samples, after: Samples) -> list[str]:
    """The counter samples of ``before`` that are missing or lower in ``after``."""
    return [
        f"{name}{dict(labels)}: {value} -> {after.get((name, labels))}"
        for (name, labels), value in before.items()
        if name.endswith(COUNTER_SUFFIXES) and after.get((name, labels), -1.0) < value
    ]


async def scrapes(port: int, count: int, previous: Samples | None = None) -> list[Samples]:
    """``count`` scrapes in a row, each checked to have no counter below the one before."""
    taken = []
    for _ in range(count):
        samples = await scrape(port)
        if previous is not None:
            assert went_down(previous, samples) == []
        taken.append(samples)
        previous = samples
    return taken


async def checks(port: int, token: str, connections: int) -> None:
    """That many allowed forward-auth checks, each over a new connection."""
    url = f"http://127.0.0.1:{port}/_keystile/check"
    headers = {"Authorization": f"Bearer {token}", "X-Original-URI": "/orders/1"}
    for _ in range(connections):
        connector = aiohttp.TCPConnector(force_close=True)
        async with (
            aiohttp.ClientSession(connector=connector) as http,
            http.get(url, headers=headers) as response,
        ):
            assert response.status == 200


#: Credential checks ``token_for`` makes on the admin API, which shares the proxy's verifier.
ADMIN_CHECKS = 2


async def token_for(config: Path, admin_port: int) -> str:
    root = await bootstrap(config)
    await admin_post(admin_port, "/users", root, {"username": "svc"})
    body = {"user": "svc", "access": {"orders": "read"}}
    created = await admin_post(admin_port, "/tokens", root, body)
    token: str = created["token"]
    return token


def workers_of(pid: int) -> set[int]:
    """Ids of the live worker processes whose parent is ``pid`` (from /proc)."""
    found = set()
    for path in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = path.read_text().rsplit(")", 1)[1].split()
            command = (path.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z" and b"spawn_main" in command:
            found.add(int(path.parent.name))
    return found


async def replaced(pid: int, gone: int) -> set[int]:
    """The workers of ``pid`` once ``gone`` has been replaced (two again, ``gone`` not one)."""
    deadline = time.monotonic() + 10
    while len(now := workers_of(pid)) != 2 or gone in now:
        assert time.monotonic() < deadline, now
        await asyncio.sleep(0.05)
    return now


async def lookups_reach(port: int, expected: float) -> None:
    """Until the cache lookups of every worker add up to ``expected`` (copied each second)."""
    deadline = time.monotonic() + 5
    while True:
        samples = await scrape(port)
        names = ("keystile_credential_cache_lookups_total",)
        total = sum(v for (name, _), v in samples.items() if name in names)
        if total == expected:
            return
        assert time.monotonic() < deadline, total
        await asyncio.sleep(0.1)


async def test_every_scrape_sums_the_workers_and_survives_a_replaced_worker(
    tmp_path: Path,
) -> None:
    """Each of several scrapes counts every request; none goes down when a worker is killed."""
    config = tmp_path / "keystile.toml"
    ports = processkit.write_config(config, "http://127.0.0.1:9")
    async with serving(config, ports["proxy"], "--workers", "2") as process:
        ready = time.monotonic()  # after every worker started
        token = await token_for(config, ports["admin"])
        await checks(ports["proxy"], token, 20)

        before = await scrapes(ports["proxy"], 6)
        assert [checked_requests(s) for s in before] == [20] * 6
        await lookups_reach(ports["proxy"], 20 + ADMIN_CHECKS)

        # A worker that dies in its first seconds would end the start (admin.workers).
        await asyncio.sleep(max(0.0, ready + START_WINDOW + 0.2 - time.monotonic()))
        victim = min(workers_of(process.pid))
        os.kill(victim, signal.SIGKILL)
        await replaced(process.pid, victim)

        after = await scrapes(ports["proxy"], 6, previous=before[-1])
        assert [checked_requests(s) for s in after] == [20] * 6
        await checks(ports["proxy"], token, 5)
        more = await scrapes(ports["proxy"], 4, previous=after[-1])
        assert [checked_requests(s) for s in more] == [25] * 4


async def test_the_metrics_directory_is_private_and_removed_at_stop(tmp_path: Path) -> None:
    """serve keeps the workers' metric files in a directory only it may open, then removes it."""
    config = tmp_path / "keystile.toml"
    ports = processkit.write_config(config, "http://127.0.0.1:9")
    temp = tmp_path / "tmp"
    temp.mkdir()
    async with serving(config, ports["proxy"], "--workers", "2", env={"TMPDIR": str(temp)}) as p:
        (directory,) = temp.glob("keystile-metrics-*")
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        assert any(directory.glob("counter_*.db"))
        p.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(p.wait(), 30) == 0
    assert list(temp.iterdir()) == []


async def test_one_worker_counts_every_request(tmp_path: Path) -> None:
    """With --workers 1 the scrape counts every request too (one process, no shared files)."""
    config = tmp_path / "keystile.toml"
    ports = processkit.write_config(config, "http://127.0.0.1:9")
    async with serving(config, ports["proxy"], "--workers", "1") as process:
        token = await token_for(config, ports["admin"])
        await checks(ports["proxy"], token, 5)
        assert [checked_requests(s) for s in await scrapes(ports["proxy"], 3)] == [5] * 3
        assert workers_of(process.pid) == set()
        await lookups_reach(ports["proxy"], 5 + ADMIN_CHECKS)

