"""The bad-token flood, and what shows that it never reaches argon2.

Valid traffic is measured alone, then again beside a second load of bad
tokens: half with a broken checksum (refused while parsing), half well-formed
with a client_id that does not exist (one store read, then refused). The
flood's ids never repeat, so none is answered from Keystile's short memory
of unknown ids.

Whether any of them ran argon2 is read from ``/_keystile/metrics``: an argon2
counter if Keystile has one, else the refusal reasons of ``keystile_auth``
(bad checksum and unknown client_id are given before argon2 is reached). A
bound that holds whatever the metrics say goes into the notes: at the default
cost this machine can run at most ``cores / verify time`` argon2 verifications
a second, so at N refusals a second at most that share of them could have.
"""

from __future__ import annotations

import os
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import load
import procs
import seed
from context import Bench, bearer, load_row
from load import Load
from procs import Proc
from report import ratio, verdict


def flood(bench: Bench, url: str, token: list[str], proc: Proc) -> None:
    half = max(1, bench.connections // 2)
    runs: dict[str, list[Load]] = {"alone": [], "with": [], "bad": []}
    before = _metrics(proc.port)
    for _ in range(bench.rounds):  # in turns, so background drift falls on both alike
        runs["alone"].append(load.drive(url, token, connections=half, duration=bench.duration))
        # Fresh ids each round and enough that none repeats: each is a real store
        # miss, not a hit in Keystile's short memory of unknown ids.
        bad = bearer(seed.bad_tokens(bench.scaled(200_000, 20_000)))
        with ThreadPoolExecutor(2) as pool:
            valid = pool.submit(load.drive, url, token, connections=half, duration=bench.duration)
            attack = pool.submit(load.drive, url, bad, connections=half, duration=bench.duration)
            runs["with"].append(valid.result())
            runs["bad"].append(attack.result())
    after = _metrics(proc.port)
    alone, with_flood, bad_load = (load.combine(runs[k]) for k in ("alone", "with", "bad"))
    bench.report.add(load_row("bad-token flood", f"valid traffic alone, {half} conns", alone))
    row = load_row("bad-token flood", f"valid traffic under the flood, {half} conns", with_flood)
    row.compare = f"p99 {ratio(with_flood.p99_ms, alone.p99_ms)} alone"
    row.target = "p99 <= 1.5 x alone"
    row.result = verdict(with_flood.p99_ms <= 1.5 * alone.p99_ms)
    bench.report.add(row)
    refused = bad_load.status_errors == bad_load.requests
    flood_row = load_row("bad-token flood", "the flood: bad checksums + unknown ids", bad_load)
    flood_row.compare = (
        "every answer 401" if refused else f"{bad_load.status_errors}/{bad_load.requests} refused"
    )
    flood_row.target = "no argon2 call"
    flood_row.result = _argon2_verdict(bench, bad_load, before, after)
    bench.report.add(flood_row)


PRE_ARGON2_REASONS = frozenset(
    {
        "bad_checksum",
        "unknown_client_id",
        "wrong_prefix",
        "missing_or_malformed_parts",
        "malformed_client_id",
        "malformed_client_secret",
    }
)

Samples = dict[tuple[str, str], float]


def _metrics(port: int) -> Samples | None:
    """``{(metric name, labels text): value}`` from /_keystile/metrics, or None."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_keystile/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return None
    samples: Samples = {}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        series, value = line.rsplit(" ", 1)
        name, _, labels = series.partition("{")
        samples[(name, labels.rstrip("}"))] = float(value)
    return samples


def _argon2_calls(samples: Samples) -> float | None:
    found = [
        value
        for (name, _), value in samples.items()
        if "argon2" in name and name.endswith(("_total", "_count"))
    ]
    return sum(found) if found else None


def _refusals(samples: Samples) -> dict[str, float]:
    """keystile_auth_total by reason, for refusals only."""
    out: dict[str, float] = {}
    for (name, labels), value in samples.items():
        if name != "keystile_auth_total" or 'outcome="ok"' in labels:
            continue
        reason = labels.split('reason="', 1)[-1].split('"', 1)[0]
        out[reason] = out.get(reason, 0.0) + value
    return out


def _argon2_verdict(
    bench: Bench, flood_load: Load, before: Samples | None, after: Samples | None
) -> str:
    _bound_note(bench, flood_load)
    if before is None or after is None:
        return "no metrics: see the bound in the notes"
    scope = "" if bench.worker_count == 1 else ", one worker's counters"
    calls_before, calls_after = _argon2_calls(before), _argon2_calls(after)
    if calls_before is not None and calls_after is not None:
        calls = calls_after - calls_before
        return verdict(calls == 0) + f" ({calls:.0f} argon2 calls{scope})"
    old = _refusals(before)
    new = {k: v - old.get(k, 0.0) for k, v in _refusals(after).items() if v > old.get(k, 0.0)}
    late = {k: v for k, v in new.items() if k not in PRE_ARGON2_REASONS}
    shown = ", ".join(f"{k} {v:.0f}" for k, v in sorted(new.items()))
    bench.report.note(f"bad-token flood: refusals by reason during the flood{scope}: {shown}")
    return verdict(not late and bool(new)) + " (all refused before argon2, by reason)"


def _bound_note(bench: Bench, flood_load: Load) -> None:
    verify = _argon2_seconds()
    ceiling = (os.cpu_count() or 1) / verify
    share = min(1.0, ceiling / flood_load.rps) if flood_load.rps else 1.0
    bench.report.note(
        f"bad-token flood: one argon2 verify at the default cost takes {verify * 1000:.1f} ms "
        f"here, so this machine verifies at most {ceiling:.0f}/s; at {flood_load.rps:,.0f} "
        f"refusals/s at most {share:.1%} of them could have run argon2, whatever the metrics say"
    )


def _argon2_seconds() -> float:
    from sidecar.config import HashingConfig
    from sidecar.verification.hashing import Argon2Hasher

    hasher = Argon2Hasher(HashingConfig(**procs.DEFAULT_HASHING))
    secret_hash = hasher.hash("benchmark")
    began = time.perf_counter()
    for _ in range(10):
        hasher.verify(secret_hash, "benchmark")
    return (time.perf_counter() - began) / 10
