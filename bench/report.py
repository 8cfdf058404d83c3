"""The one table a benchmark run prints, and the Markdown file it writes.

A ``Row`` is one measured thing: throughput and latency for load scenarios,
latency alone for revocation, a size for memory. ``compare`` says how it
stands against the baseline measured in the same run, ``target`` what the
issue asks, ``result`` whether it was met. Notes under the table carry what
a row cannot (seed times, skipped baselines and why).
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

COLUMNS = ("scenario", "measured", "req/s", "p50 ms", "p99 ms", "vs baseline", "target", "result")


@dataclass
class Row:
    scenario: str
    measured: str
    rps: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    compare: str = ""
    target: str = ""
    result: str = ""

    def cells(self) -> list[str]:
        return [
            self.scenario,
            self.measured,
            _number(self.rps, 0),
            _number(self.p50_ms, 2),
            _number(self.p99_ms, 2),
            self.compare,
            self.target,
            self.result,
        ]


@dataclass
class Report:
    command: str
    setup: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        print("  " + " | ".join(c for c in row.cells() if c), flush=True)
        return row

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", flush=True)

    def markdown(self) -> str:
        lines = [
            f"Run: `{self.command}`",
            f"Date: {self.started:%Y-%m-%d %H:%M} UTC; machine: {machine()}",
            f"Setup: {self.setup}",
            "",
            "| " + " | ".join(COLUMNS) + " |",
            "| " + " | ".join("---" for _ in COLUMNS) + " |",
        ]
        lines += ["| " + " | ".join(row.cells()) + " |" for row in self.rows]
        if self.notes:
            lines += ["", "Notes:", ""] + [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.markdown(), encoding="utf-8")


def machine() -> str:
    return (
        f"{os.cpu_count()} cores, {platform.machine()}, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def _number(value: float | None, digits: int) -> str:
    if value is None:
        return ""
    return f"{value:,.{digits}f}"


def ratio(value: float, base: float) -> str:
    return f"{value / base:.2f} x" if base else "n/a"


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"
