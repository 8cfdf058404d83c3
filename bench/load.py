"""Load generation: wrk when installed, an aiohttp client otherwise.

Every run is bounded in time (``duration``) and only ever targets 127.0.0.1.
A run presents one header (``Authorization``), cycling through ``values``:
one value is a static request, which wrk builds once; many values go through
a small Lua ``request()`` that reads them from a file. Either way the result
is the same ``Load``: requests, duration, p50/p99/max latency, and how many
answers were errors (status >= 400) or socket failures.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

#: KEYSTILE_BENCH_NO_WRK=1 uses the aiohttp client even where wrk is installed.
WRK = None if os.environ.get("KEYSTILE_BENCH_NO_WRK") else shutil.which("wrk")

_DONE = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d "
    .. "status_errors=%d socket_errors=%d\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end
"""

_CYCLE = """
local values, count, index = {}, 0, 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("offset", threads * 7919)
end
function init(args)
  header = args[1]
  for line in io.lines(args[2]) do
    count = count + 1
    values[count] = line
  end
  index = (offset or 0) % count
end
function request()
  index = index % count + 1
  return wrk.format(nil, nil, {[header] = values[index]})
end
"""


@dataclass(frozen=True)
class Load:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    status_errors: int
    socket_errors: int
    tool: str
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def drive(
    url: str,
    values: Sequence[str],
    *,
    header: str = "Authorization",
    connections: int = 32,
    duration: float = 10.0,
    threads: int = 1,
) -> Load:
    """Load ``url`` for ``duration`` seconds over ``connections`` keep-alive connections."""
    assert url.startswith("http://127.0.0.1:"), "benchmarks only target the loopback"
    if WRK is not None:
        return _wrk(WRK, url, values, header, connections, duration, threads)
    return asyncio.run(_python(url, values, header, connections, duration))


def _wrk(
    wrk: str,
    url: str,
    values: Sequence[str],
    header: str,
    connections: int,
    duration: float,
    threads: int,
) -> Load:
    with tempfile.TemporaryDirectory(prefix="keystile-wrk-") as tmp:
        script, listing = Path(tmp) / "bench.lua", Path(tmp) / "values.txt"
        command = [wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s"]
        command += ["--timeout", "5s", "-s", str(script), url]
        if len(values) == 1:
            script.write_text(_DONE, encoding="utf-8")
            command[1:1] = ["-H", f"{header}: {values[0]}"]
        elif values:
            script.write_text(_CYCLE + _DONE, encoding="utf-8")
            listing.write_text("\n".join(values) + "\n", encoding="utf-8")
            command += ["--", header, str(listing)]
        else:
            script.write_text(_DONE, encoding="utf-8")
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=duration + 60, check=False
        )
    match = re.search(r"^BENCH (.*)$", done.stdout, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk failed: {done.stderr.strip() or done.stdout.strip()}")
    numbers = {k: int(v) for k, v in (pair.split("=") for pair in match.group(1).split())}
    return Load(
        requests=numbers["requests"],
        seconds=numbers["duration_us"] / 1e6,
        p50_ms=numbers["p50_us"] / 1000,
        p99_ms=numbers["p99_us"] / 1000,
        max_ms=numbers["max_us"] / 1000,
        status_errors=numbers["status_errors"],
        socket_errors=numbers["socket_errors"],
        tool="wrk",
    )


async def _python(
    url: str, values: Sequence[str], header: str, connections: int, duration: float
) -> Load:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    socket_errors = 0
    deadline = time.monotonic() + duration

    async def user(session: aiohttp.ClientSession, start: int) -> None:
        nonlocal socket_errors
        index = start
        while time.monotonic() < deadline:
            headers = {header: values[index % len(values)]} if values else {}
            index += 1
            began = time.perf_counter()
            try:
                async with session.get(url, headers=headers) as response:
                    await response.read()
                    statuses[response.status] += 1
            except (aiohttp.ClientError, TimeoutError):
                socket_errors += 1
                continue
            latencies.append(time.perf_counter() - began)

    began = time.monotonic()
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(user(session, i * 7919) for i in range(connections)))
    return summarize(latencies, statuses, socket_errors, time.monotonic() - began)


def combine(runs: Sequence[Load]) -> Load:
    """Several runs of one target as one: total req/s, median p50 and p99, worst max."""

    def median(values: list[float]) -> float:
        ordered = sorted(values)
        return ordered[len(ordered) // 2]

    return Load(
        requests=sum(r.requests for r in runs),
        seconds=sum(r.seconds for r in runs),
        p50_ms=median([r.p50_ms for r in runs]),
        p99_ms=median([r.p99_ms for r in runs]),
        max_ms=max(r.max_ms for r in runs),
        status_errors=sum(r.status_errors for r in runs),
        socket_errors=sum(r.socket_errors for r in runs),
        tool=runs[0].tool,
    )


def summarize(
    latencies: list[float], statuses: Counter[int], socket_errors: int, seconds: float
) -> Load:
    ordered = sorted(latencies)

    def percentile(p: float) -> float:
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] * 1000

    return Load(
        requests=len(ordered),
        seconds=seconds,
        p50_ms=percentile(50),
        p99_ms=percentile(99),
        max_ms=ordered[-1] * 1000 if ordered else 0.0,
        status_errors=sum(n for status, n in statuses.items() if status >= 400),
        socket_errors=socket_errors,
        tool="python",
        statuses=dict(statuses),
    )


async def send_each(
    url: str, values: Sequence[str], *, header: str = "Authorization", concurrency: int = 32
) -> Counter[int]:
    """Send exactly one request per value (to warm a cache); answers the status counts."""
    statuses: Counter[int] = Counter()
    queue = iter(values)
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)

    async def user(session: aiohttp.ClientSession) -> None:
        for value in queue:
            async with session.get(url, headers={header: value}) as response:
                await response.read()
                statuses[response.status] += 1

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(user(session) for _ in range(concurrency)))
    return statuses
