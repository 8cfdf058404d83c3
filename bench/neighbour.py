"""The hot path beside a busy neighbour: Keystile and the bare proxy on a scarce CPU.

A sidecar shares its CPU with the application beside it. This scenario runs
the cached hot path (one cached token) on Keystile and the bare aiohttp proxy
in turns, with nothing else, then one, then two CPU-bound neighbours (a Python
busy loop each, started before and stopped after each pair of runs, and
bounded in time even if the benchmark dies). Levels and targets are
interleaved round by round, the order of the two targets swapped each round,
so drift in the machine's background load falls on all of them alike.

Each level reports the median of the per-round ratios (Keystile req/s over the
bare proxy's in the same round) with their spread, and the median p99 of each.
A note gives what each Keystile worker did per request: context switches,
voluntary (it waited) and involuntary (the scheduler took the CPU away), from
/proc/PID/status, and the threads each process runs, from /proc/PID/task.
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

import load
import procs
import seed
from context import API_PATH, Bench, bearer
from load import Load
from procs import Proc
from report import Row, verdict

LEVELS = (0, 1, 2)
#: The neighbour: a pure-Python busy loop, as an application thread that never waits.
SPIN = (
    "import sys, time\n"
    "end = time.monotonic() + float(sys.argv[1])\n"
    "while time.monotonic() < end: pass\n"
)


@dataclass
class Turns:
    keystile: list[Load] = field(default_factory=list)
    bare: list[Load] = field(default_factory=list)
    #: Per request, for "keystile" and "bare": (CPU ms, voluntary, involuntary switches).
    costs: dict[str, list[tuple[float, float, float]]] = field(
        default_factory=lambda: {"keystile": [], "bare": []}
    )

    def ratios(self) -> list[float]:
        return [k.rps / b.rps for k, b in zip(self.keystile, self.bare, strict=True) if b.rps]


def neighbour(bench: Bench) -> None:
    """Keystile (one cached token) against the bare proxy, quiet and beside 1 and 2 spinners."""
    bare = procs.start_bare_proxy(bench.processes, bench.upstream, bench.worker_count, bench.uvloop)
    bare_url = bare.url + API_PATH
    proc, _, _ = bench.keystile("keystile-neighbour", bench.redis_url, procs.DEFAULT_HASHING)
    token = bearer(seed.seed_presented(bench.redis_url, 1, procs.DEFAULT_HASHING, distinct=False))
    url = proc.url + API_PATH
    for target, values in ((url, token), (bare_url, [])):
        load.drive(target, values, connections=bench.connections, duration=2)
    rounds = bench.scaled(5, 1)
    found = {level: Turns() for level in LEVELS}
    for turn in range(rounds):
        for level in LEVELS:
            targets = {"keystile": (url, token, proc), "bare": (bare_url, [], bare)}
            _one_round(bench, found[level], level, turn, targets)
    for level in LEVELS:
        _rows(bench, level, found[level])
    bench.report.note(f"neighbour: Keystile {_threads(proc)}; bare proxy {_threads(bare)}")
    bench.processes.stop(proc)
    bench.processes.stop(bare)


def _one_round(
    bench: Bench,
    turns: Turns,
    level: int,
    turn: int,
    targets: dict[str, tuple[str, list[str], Proc]],
) -> None:
    bound = 2 * bench.duration + 30  # a spinner ends by itself even if nothing stops it
    spinners = [_spin(bench, f"spinner-{level}-{i}", bound) for i in range(level)]
    try:
        order = ("keystile", "bare") if turn % 2 == 0 else ("bare", "keystile")
        for name in order:
            target, values, proc = targets[name]
            before = _usage(proc)
            result = load.drive(
                target, values, connections=bench.connections, duration=bench.duration
            )
            after = _usage(proc)
            (turns.keystile if name == "keystile" else turns.bare).append(result)
            count = max(result.requests, 1)
            cost = tuple((a - b) / count for a, b in zip(after, before, strict=True))
            turns.costs[name].append((cost[0] * 1000, cost[1], cost[2]))
    finally:
        for spinner in spinners:
            bench.processes.stop(spinner)


def _spin(bench: Bench, name: str, seconds: float) -> Proc:
    return bench.processes.spawn(name, [sys.executable, "-c", SPIN, str(seconds)], 0)


def _rows(bench: Bench, level: int, turns: Turns) -> None:
    beside = {0: "nothing", 1: "one busy loop"}.get(level, f"{level} busy loops")
    scenario = f"beside {beside}"
    ratios = turns.ratios()
    k_p99 = statistics.median(r.p99_ms for r in turns.keystile)
    b_p99 = statistics.median(r.p99_ms for r in turns.bare)
    n = len(turns.bare)
    bench.report.add(
        Row(
            scenario,
            f"bare proxy, {n} runs",
            _median_rps(turns.bare),
            _median(turns.bare, "p50_ms"),
            b_p99,
        )
    )
    row = Row(
        scenario,
        f"Keystile, {n} runs",
        _median_rps(turns.keystile),
        _median(turns.keystile, "p50_ms"),
        k_p99,
    )
    middle = statistics.median(ratios) if ratios else 0.0
    spread = f"{min(ratios):.2f}-{max(ratios):.2f}" if ratios else "n/a"
    row.compare = f"{middle:.2f} x bare (runs {spread}); p99 {k_p99 - b_p99:+.2f} ms"
    if level == 0:
        row.target, row.result = ">= 0.95 x bare", verdict(middle >= 0.95)
    elif level == 1:
        row.target = ">= 0.9 x bare, p99 <= bare + 2 ms"
        row.result = verdict(middle >= 0.9 and k_p99 - b_p99 <= 2)
    bench.report.add(row)
    bench.report.note(
        f"{scenario}: per request, over all the processes of each: "
        f"Keystile {_costs(turns.costs['keystile'])}; bare {_costs(turns.costs['bare'])}; "
        f"p99 per run: Keystile {_list(turns.keystile)}, bare {_list(turns.bare)} ms"
    )


def _costs(found: list[tuple[float, float, float]]) -> str:
    cpu, voluntary, involuntary = (statistics.median(c[i] for c in found) for i in range(3))
    return (
        f"{cpu * 1000:.0f} us CPU, {voluntary:.3f} voluntary and {involuntary:.3f} "
        "involuntary context switches"
    )


def _median_rps(runs: list[Load]) -> float:
    return statistics.median(r.rps for r in runs)


def _median(runs: list[Load], name: str) -> float:
    return statistics.median(getattr(r, name) for r in runs)


def _list(runs: list[Load]) -> str:
    return ", ".join(f"{r.p99_ms:.1f}" for r in runs)


def _usage(proc: Proc) -> tuple[float, int, int]:
    """CPU seconds, voluntary and involuntary context switches of the whole process tree."""
    voluntary = involuntary = 0
    pids = list(proc.rss_mib())
    for pid in pids:
        for status in Path(f"/proc/{pid}/task").glob("*/status"):
            try:
                text = status.read_text()
            except OSError:
                continue
            for line in text.splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    voluntary += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches:"):
                    involuntary += int(line.split()[1])
    return sum(procs._cpu_seconds(pid) for pid in pids), voluntary, involuntary


def _threads(proc: Proc) -> str:
    """Threads per process of the tree, by thread name."""
    parts = []
    for pid in sorted(proc.rss_mib()):
        names = []
        for comm in Path(f"/proc/{pid}/task").glob("*/comm"):
            try:
                names.append(comm.read_text().strip())
            except OSError:
                continue
        parts.append(f"pid {pid}: {len(names)} threads ({', '.join(sorted(names))})")
    return "; ".join(parts)
