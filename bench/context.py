"""What every scenario shares: the run's processes, its settings, its baselines.

``Bench`` holds the processes started so far, the report, the main Redis and
the fast upstream, the load settings (duration, connections, quick or full)
and the baselines measured first, against which later rows are compared.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import load
import procs
from load import Load
from procs import Proc, Processes
from report import Report, Row

API_PATH = "/bench/item"


@dataclass
class Bench:
    processes: Processes
    report: Report
    quick: bool
    workers: int | None  # passed as --workers; None when `keystile serve` has no such flag
    uvloop: bool
    redis_url: str
    upstream: Proc
    duration: float
    connections: int = 32
    baselines: dict[str, Load] = field(default_factory=dict)
    #: The bare proxy, left running so that later scenarios can measure it alternately.
    bare_url: str | None = None

    @property
    def worker_count(self) -> int:
        return self.workers or 1

    def scaled(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def measure(self, url: str, values: list[str]) -> Load:
        """A short warm-up, then the measured run."""
        load.drive(url, values, connections=self.connections, duration=1)
        return load.drive(url, values, connections=self.connections, duration=self.duration)

    @property
    def rounds(self) -> int:
        return self.scaled(3, 1)

    def alternate(self, targets: dict[str, tuple[str, list[str]]]) -> dict[str, Load]:
        """Measure each target in turn, ``rounds`` times over.

        On a shared machine the background load drifts; taking turns lets the
        drift fall on every target alike, so their ratio stays meaningful.
        """
        for url, values in targets.values():
            load.drive(url, values, connections=self.connections, duration=1)
        runs: dict[str, list[Load]] = {name: [] for name in targets}
        for _ in range(self.rounds):
            for name, (url, values) in targets.items():
                runs[name].append(
                    load.drive(url, values, connections=self.connections, duration=self.duration)
                )
        return {name: load.combine(found) for name, found in runs.items()}

    def keystile(
        self,
        name: str,
        redis_url: str,
        hashing: dict[str, int],
        workers: int | None = None,
        probe: str | None = None,
    ) -> tuple[Proc, int, str]:
        """Start ``keystile serve``; returns the process, its admin port and its config path.

        With ``probe`` (an Authorization value), a proxied request is sent every
        0.1 s while the new process is still busy starting, and the slowest
        answer goes into the notes: what a client sees from a replica that has
        just joined.
        """
        config, proxy_port, admin_port = procs.write_keystile_config(
            self.processes, name, redis_url, self.upstream, hashing
        )
        chosen = self.workers if workers is None else (workers if self.workers else None)
        proc = procs.start_keystile(self.processes, name, config, proxy_port, chosen)
        with ThreadPoolExecutor(1) as pool:
            stop = threading.Event()
            slowest = pool.submit(_probe, proc.port, probe, stop) if probe else None
            settled = proc.wait_until_idle()
            stop.set()
            worst = slowest.result() if slowest else None
        if settled > 5:
            seen = f"; meanwhile a proxied request took up to {worst:,.0f} ms" if worst else ""
            self.report.note(f"{name} was busy for {settled:.0f} s after readyz answered{seen}")
        return proc, admin_port, str(config)


def _probe(port: int, authorization: str, stop: threading.Event) -> float:
    """The slowest of requests sent every 0.1 s until ``stop`` (ms; 5 s counts as 5,000)."""
    slowest = 0.0
    while not stop.is_set():
        began = time.perf_counter()
        procs.http_status(port, API_PATH, {"Authorization": authorization})
        slowest = max(slowest, (time.perf_counter() - began) * 1000)
        stop.wait(0.1)
    return slowest


def bearer(tokens: list[str]) -> list[str]:
    return [f"Bearer {token}" for token in tokens]


def load_row(scenario: str, measured: str, result: Load, **more: str) -> Row:
    return Row(scenario, measured, result.rps, result.p50_ms, result.p99_ms, **more)
