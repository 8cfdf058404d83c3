"""CPU per request: Keystile against the bare aiohttp proxy, or against another checkout.

Requests per second move with everything else the machine runs; the CPU time
a process spends per request (utime + stime from /proc, divided by the
requests wrk counted) moves much less, so small changes to the hot path show
here when the full benchmark's ratios are still noise. One worker each
(unless ``--workers``), the fast upstream, a cached token, wrk with 16
connections, in turns.

    .venv/bin/python bench/cpu_cost.py                       # against the bare proxy
    .venv/bin/python bench/cpu_cost.py --compare /tmp/other  # against another checkout
    .venv/bin/python bench/cpu_cost.py --profile             # and a py-spy profile
    .venv/bin/python bench/cpu_cost.py --workers 2 --compare /tmp/other  # the supervised path

``--workers 2`` measures what several workers add (their metrics meet in
shared files, docs/metrics.md); the CPU counted is the whole process tree's.

Needs wrk (apt-get install wrk) and Linux's /proc; ``--profile`` needs py-spy.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import procs
import seed
from procs import Proc


def wrk(proc: Proc, header: list[str], seconds: int) -> tuple[int, str]:
    """Requests served and wrk's p99, for one run against ``proc``."""
    out = subprocess.run(
        ["wrk", "-t1", "-c16", f"-d{seconds}", "--latency", *header, proc.url + "/bench/item"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"{proc.name} answered errors:\n{out}")
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+(\S+)", out)
    return requests, p99.group(1) if p99 else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", type=Path, help="a checkout to measure against instead")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--workers", type=int, default=1, help="keystile workers (default 1)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    work = Path(tempfile.mkdtemp(prefix="keystile-cpu-"))
    processes = procs.Processes(work)
    try:
        _, redis_url = procs.start_redis(processes)
        upstream = procs.start_upstream(processes)
        token = seed.seed_presented(redis_url, 1, procs.CHEAP_HASHING, distinct=False)[0]
        header = ["-H", f"Authorization: Bearer {token}"]

        def keystile(name: str) -> Proc:
            config, port, _ = procs.write_keystile_config(
                processes, name, redis_url, upstream, procs.CHEAP_HASHING
            )
            return procs.start_keystile(processes, name, config, port, args.workers)

        targets: dict[str, tuple[Proc, list[str]]] = {"keystile": (keystile("keystile"), header)}
        if args.compare:
            procs.SOURCE = args.compare
            targets[f"keystile at {args.compare}"] = (keystile("compare"), header)
        else:
            bare = procs.start_bare_proxy(processes, upstream, 1, procs.keystile_uses_uvloop())
            targets["bare aiohttp proxy"] = (bare, [])
        for proc, extra in targets.values():
            wrk(proc, extra, 1)  # warm-up: connections, caches
        print(f"{'':28} {'req/s':>8} {'CPU us/req':>11} {'p99':>9}")
        for _ in range(args.rounds):
            for name, (proc, extra) in targets.items():
                before = proc.cpu_seconds()
                requests, p99 = wrk(proc, extra, args.seconds)
                used = proc.cpu_seconds() - before
                rate = requests / args.seconds
                print(f"{name:28} {rate:8.0f} {used / requests * 1e6:11.1f} {p99:>9}", flush=True)
        if args.profile:
            _profile(targets["keystile"][0], header, work)
    finally:
        processes.stop_all()


def _profile(proc: Proc, header: list[str], work: Path) -> None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out = work / "profile.txt"
    load = subprocess.Popen(
        ["wrk", "-t1", "-c16", "-d12", *header, proc.url + "/bench/item"],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(1)
    command = [spy, "record", "-p", str(proc.popen.pid), "-d", "8", "-f", "raw", "-o", str(out)]
    subprocess.run([*command, "--nonblocking"], capture_output=True, check=False)
    load.wait()
    print(f"py-spy profile (collapsed stacks): {out}")


if __name__ == "__main__":
    main()
