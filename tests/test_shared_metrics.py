"""``/_keystile/metrics`` under ``keystile serve --workers N``, as real processes.

Each scrape reaches one worker; every one must answer the sum over all of
them, and no counter may go down, also when a worker dies and is replaced.
"""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from admin.workers import START_WINDOW
from tests.kits import processes
from tests.kits.processes import admin_post, bootstrap, serving

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


def listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a socket listening on ``port`` (from /proc)."""
    wanted = f":{port:04X}"
    listening = {
        fields[9]
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
        if (fields := line.split())[1].endswith(wanted) and fields[3] == "0A"  # LISTEN
    }
    try:
        held = {os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}
    except OSError:
        return False
    return any(f"socket:[{inode}]" in held for inode in listening)


async def replaced(pid: int, gone: int, port: int) -> None:
    """Until serve ``pid`` has two workers again, ``gone`` not one, both listening on ``port``."""
    deadline = time.monotonic() + 15
    while (
        len(now := workers_of(pid)) != 2
        or gone in now
        or not all(listens(worker, port) for worker in now)
    ):
        assert time.monotonic() < deadline, now
        await asyncio.sleep(0.05)


def total(samples: Samples, name: str) -> float:
    """The sum of every sample called ``name``."""
    return sum(value for (sample, _), value in samples.items() if sample == name)


async def settles(port: int, name: str, wanted: Callable[[float], bool]) -> None:
    """Until ``name`` summed is as ``wanted`` (the cache metrics are copied each second)."""
    deadline = time.monotonic() + 5
    while not wanted(value := total(await scrape(port), name)):
        assert time.monotonic() < deadline, f"{name} = {value}"
        await asyncio.sleep(0.1)


async def kill_a_worker(pid: int, victim: int, port: int) -> None:
    """SIGKILL worker ``victim`` of serve ``pid``; return once its successor listens on ``port``."""
    os.kill(victim, signal.SIGKILL)
    await replaced(pid, victim, port)


LOOKUPS = "keystile_credential_cache_lookups_total"
ENTRIES = "keystile_credential_cache_entries"


async def test_every_scrape_sums_the_workers_and_survives_replaced_workers(
    tmp_path: Path,
) -> None:
    """Every scrape counts every request, none goes down as workers die; the files go at stop."""
    config = tmp_path / "keystile.toml"
    ports = processes.write_config(config, "http://127.0.0.1:9")
    temp = tmp_path / "tmp"
    temp.mkdir()
    async with serving(
        config, ports["proxy"], "--workers", "2", env={"TMPDIR": str(temp)}
    ) as process:
        ready = time.monotonic()  # after every worker started
        first_workers = workers_of(process.pid)
        token = await token_for(config, ports["admin"])
        await checks(ports["proxy"], token, 20)

        before = await scrapes(ports["proxy"], 6)
        assert [checked_requests(s) for s in before] == [20] * 6
        await settles(ports["proxy"], LOOKUPS, lambda n: n == 20 + ADMIN_CHECKS)
        await settles(ports["proxy"], ENTRIES, lambda n: n >= 1)

        # A worker that dies in its first seconds would end the start (admin.workers).
        await asyncio.sleep(max(0.0, ready + START_WINDOW + 0.2 - time.monotonic()))
        one, other = sorted(first_workers)
        await kill_a_worker(process.pid, one, ports["proxy"])
        after_one = await scrapes(ports["proxy"], 6, previous=before[-1])
        await kill_a_worker(process.pid, other, ports["proxy"])
        after_both = await scrapes(ports["proxy"], 6, previous=after_one[-1])

        assert [checked_requests(s) for s in after_one + after_both] == [20] * 12
        assert total(after_both[-1], LOOKUPS) == 20 + ADMIN_CHECKS
        # Two new workers have empty caches: the dead ones' entries left the gauge.
        assert total(after_both[-1], ENTRIES) == 0
        await checks(ports["proxy"], token, 5)
        more = await scrapes(ports["proxy"], 4, previous=after_both[-1])
        assert [checked_requests(s) for s in more] == [25] * 4

        # The workers' files: in a directory only this user may open, gone after the stop.
        (directory,) = temp.glob("keystile-metrics-*")
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    assert list(temp.iterdir()) == []


async def test_one_worker_counts_every_request(tmp_path: Path) -> None:
    """With --workers 1 (one process, no shared files) every scrape counts every request too."""
    config = tmp_path / "keystile.toml"
    ports = processes.write_config(config, "http://127.0.0.1:9")
    async with serving(config, ports["proxy"], "--workers", "1") as process:
        async with aiohttp.ClientSession() as http:
            for _ in range(5):
                async with http.get(f"http://127.0.0.1:{ports['proxy']}/orders/1") as response:
                    assert response.status == 401

        assert [checked_requests(s) for s in await scrapes(ports["proxy"], 3)] == [5] * 3
        assert workers_of(process.pid) == set()


FORKED = """
import os, sys
from prometheus_client import Counter
from sidecar.ops.metrics import shared_values_without_getpid
shared_values_without_getpid()
counter = Counter("forked", "counts in parent and child")
counter.inc()
child = os.fork()
if child == 0:
    counter.inc(5)
    os._exit(0)
os.waitpid(child, 0)
counter.inc()
"""


def test_values_written_without_getpid_still_follow_a_fork(tmp_path: Path) -> None:
    """After a fork the child's increments go to files of its own; the parent keeps its count."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", FORKED], env=env, check=True, timeout=30)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(tmp_path))

    files = sorted(path.name for path in tmp_path.iterdir())
    assert len(files) == 2, files
    assert registry.get_sample_value("forked_total") == 7.0
