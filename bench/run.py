"""Keystile's benchmark suite: one command, real processes, one table.

    .venv/bin/python bench/run.py [--quick] [--scenario NAME ...] [--workers N]

It starts Redis, a fast upstream, Keystile, a bare aiohttp pass-through proxy
with the same number of workers, and nginx and Caddy when they are installed;
drives them with wrk (or an aiohttp client where wrk is absent); prints one
table with req/s, p50 and p99 and the ratios against the baselines measured
in the same run; and writes it to bench/results/latest.md. Everything listens
on 127.0.0.1 and every load is bounded in time. ``--quick`` shortens every
run and shrinks every store, to check the scripts, not to quote figures.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import context
import load
import neighbour
import procs
import scenarios
import soak
from report import Report

RESULTS = procs.BENCH / "results" / "latest.md"
SCENARIOS = (
    "baselines",
    "main",
    "store",
    "revocation",
    "memory",
    "admin-search",
    "neighbour",
    "soak",
)
#: Run only when named: they take minutes (the soak half an hour) and load the CPU on purpose.
ON_REQUEST = ("neighbour", "soak")


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs, small stores")
    parser.add_argument(
        "--scenario",
        action="append",
        choices=SCENARIOS,
        help="run only these (repeatable): baselines; main (cached, flood, cold); "
        "store (1,000 vs 1,000,000 tokens); revocation; memory; admin-search; "
        "neighbour (the hot path beside busy loops); soak (30 minutes); these two only when named",
    )
    parser.add_argument(
        "--workers", type=int, help="Keystile and baseline workers (default: one per core)"
    )
    parser.add_argument(
        "--duration", type=float, help="seconds per measured run (default 10, quick 2)"
    )
    parser.add_argument(
        "--connections", type=int, default=32, help="keep-alive connections per run"
    )
    parser.add_argument(
        "--source", type=Path, help="run Keystile from this checkout (default: this tree)"
    )
    parser.add_argument(
        "--output", type=Path, default=RESULTS, help="where the Markdown table goes"
    )
    parser.add_argument(
        "--soak-minutes", type=float, default=30.0, help="how long the soak runs (default 30)"
    )
    parser.add_argument(
        "--restart-every",
        type=float,
        default=5.0,
        help="minutes between the soak's Redis restarts (default 5)",
    )
    parser.add_argument(
        "--soak-rate", type=int, default=200, help="the soak's requests per second (default 200)"
    )
    parser.add_argument(
        "--soak-appendfsync",
        choices=("always", "everysec"),
        default="always",
        help="the soak's Redis appendfsync (default always)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    if args.source is not None:
        procs.SOURCE = args.source.resolve()
    chosen = args.scenario or [s for s in SCENARIOS if s not in ON_REQUEST]
    workers = _workers(args.workers)
    workdir = Path(tempfile.mkdtemp(prefix="keystile-bench-"))
    command = "python bench/run.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    tool = "wrk" if load.WRK else "an aiohttp client"
    setup = (
        f"Keystile {_revision()}, {_describe(workers)}; load from {tool} over {args.connections} "
        "keep-alive connections; every process on this one machine"
    )
    report = Report(command.strip(), setup)
    print(f"{command}\n  {setup}\n  logs: {workdir}", flush=True)
    processes = procs.Processes(workdir)
    try:
        _, redis_url = procs.start_redis(processes)
        bench = context.Bench(
            processes=processes,
            report=report,
            quick=args.quick,
            workers=workers,
            uvloop=procs.keystile_uses_uvloop(),
            redis_url=redis_url,
            upstream=procs.start_upstream(processes),
            duration=args.duration or (2.0 if args.quick else 10.0),
            connections=args.connections,
        )
        report.note(f"load average at the start: {_load_average()}")
        _run(bench, chosen)
        if "soak" in chosen:
            settings = soak.Settings(
                args.soak_minutes, args.restart_every, args.soak_rate, args.soak_appendfsync
            )
            _step("soak", lambda: soak.run(bench, settings))
        report.note(f"load average at the end: {_load_average()}")
    except (procs.StartFailed, subprocess.CalledProcessError, RuntimeError) as exc:
        report.note(f"the run stopped early: {exc}")
        _finish(report, args.output)
        return 1
    finally:
        processes.stop_all()
    _finish(report, args.output)
    return 0


def _run(bench: context.Bench, chosen: list[str]) -> None:
    if "baselines" in chosen or "main" in chosen:
        _step("baselines", lambda: scenarios.baselines(bench))
    if "main" in chosen:
        _step("cached / flood / cold", lambda: scenarios.main_instance(bench))
    if "store" in chosen:
        _step("store size", lambda: scenarios.store_size(bench))
    if "revocation" in chosen:
        _step("revocation", lambda: scenarios.revocations(bench))
    if "memory" in chosen:
        _step("memory", lambda: scenarios.memory(bench))
    if "admin-search" in chosen:
        _step("admin search", lambda: scenarios.admin_search(bench))
    if "neighbour" in chosen:
        _step("beside a busy neighbour", lambda: neighbour.neighbour(bench))


def _step(name: str, body: Callable[[], None]) -> None:
    began = time.monotonic()
    print(f"\n== {name}", flush=True)
    body()
    print(f"   ({time.monotonic() - began:.0f} s)", flush=True)


def _workers(requested: int | None) -> int | None:
    """Workers to pass to ``keystile serve``, or None while it has no --workers flag."""
    if not procs.keystile_supports_workers():
        if requested not in (None, 1):
            print("keystile serve has no --workers yet: running 1 worker", file=sys.stderr)
        return None
    return requested or os.cpu_count() or 1


def _describe(workers: int | None) -> str:
    if workers is None:
        return "1 worker (`keystile serve` has no --workers flag yet), baselines 1 worker"
    return f"{workers} worker(s), baselines the same"


def _revision() -> str:
    """The commit of the Keystile that runs, and whether its tree had uncommitted changes."""

    def git(*arguments: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(procs.SOURCE), *arguments],
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    edited = git("status", "--porcelain", "--untracked-files=no", "--", "sidecar", "admin")
    return f"at commit {commit}" + (" with uncommitted changes" if edited else "")


def _load_average() -> str:
    """The machine's 1/5/15-minute load: how much else was running beside the benchmark."""
    return " / ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores"


def _finish(report: Report, output: Path) -> None:
    report.write(output)
    print("\n" + report.markdown(), flush=True)
    print(f"written to {output}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
