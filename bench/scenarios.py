"""The scenarios of issue 5 item 5, each adding its rows to the report.

They share one ``Bench``: the run's processes, Redis, the fast upstream, the
load settings and the baselines measured first. Each scenario starts the
Keystile processes it needs with a generated config and stops them after.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import load
import peers
import procs
import redis
import revocation
import seed
from context import API_PATH, Bench, bearer, load_row
from flood import flood
from load import Load
from procs import Proc
from report import Report, Row, ratio, verdict

from sidecar import tokenformat
from sidecar.store import keys

CADDY_USER, CADDY_PASSWORD = "bench", "bench-password-not-secret"


# -- baselines -------------------------------------------------------------------


def baselines(bench: Bench) -> None:
    report, n = bench.report, bench.worker_count
    direct = bench.measure(bench.upstream.url + "/item", [])
    report.add(load_row("baseline", "upstream, direct (no proxy)", direct, compare="the ceiling"))
    bare = procs.start_bare_proxy(bench.processes, bench.upstream, n, bench.uvloop)
    bench.baselines["bare"] = bench.measure(bare.url + API_PATH, [])
    report.add(load_row("baseline", f"bare aiohttp proxy, {n} worker(s)", bench.baselines["bare"]))
    bench.bare_url = bare.url + API_PATH
    nginx = peers.start_nginx(bench.processes, bench.upstream, n)
    if nginx is None:
        report.note("nginx is not installed (apt-get install nginx-light): its baseline is skipped")
    else:
        bench.baselines["nginx"] = bench.measure(nginx.url + API_PATH, [])
        report.add(
            load_row("baseline", f"nginx proxy_pass, {n} worker(s)", bench.baselines["nginx"])
        )
        bench.processes.stop(nginx)
    caddy = peers.start_caddy(bench.processes, bench.upstream, n, CADDY_USER, CADDY_PASSWORD)
    if caddy is None:
        report.note("caddy is not installed (apt-get install caddy): its baseline is skipped")
        return
    basic = "Basic " + base64.b64encode(f"{CADDY_USER}:{CADDY_PASSWORD}".encode()).decode()
    # One request first: Caddy's bcrypt (cost 14) takes about a second, and 32
    # connections all missing its hash cache at once would each pay it.
    procs.http_status(caddy.port, API_PATH, {"Authorization": basic})
    bench.baselines["caddy"] = bench.measure(caddy.url + API_PATH, [basic])
    measured = f"Caddy reverse_proxy + basicauth (bcrypt), GOMAXPROCS={n}"
    report.add(load_row("baseline", measured, bench.baselines["caddy"]))
    bench.processes.stop(caddy)


# -- the main instance: cached, flood, cold ---------------------------------------


def main_instance(bench: Bench) -> None:
    """Cached valid token, bad-token flood and cold tokens on one Keystile (default argon2)."""
    proc, _, _ = bench.keystile("keystile-main", bench.redis_url, procs.DEFAULT_HASHING)
    url = proc.url + API_PATH
    token = bearer(seed.seed_presented(bench.redis_url, 1, procs.DEFAULT_HASHING, distinct=False))
    cached(bench, url, token)
    flood(bench, url, token, proc)
    cold(bench, url)
    bench.processes.stop(proc)


def cached(bench: Bench, url: str, token: list[str]) -> None:
    targets = {"keystile": (url, token)}
    if bench.bare_url is not None:
        targets["bare"] = (bench.bare_url, [])
    found = bench.alternate(targets)
    result, bare = found["keystile"], found.get("bare")
    _check_all_ok(bench.report, "cached valid token", result)
    turns = f"{bench.rounds} alternating runs" if bench.rounds > 1 else "one run each"
    if bare is not None:
        bench.report.add(load_row("cached valid token", f"bare aiohttp proxy, {turns}", bare))
    measured = f"Keystile, {bench.worker_count} worker(s), {turns}"
    row = load_row("cached valid token", measured, result)
    row.target = ">= 0.9 x bare req/s, p99 <= bare + 1 ms"
    if bare is not None:
        extra = result.p99_ms - bare.p99_ms
        row.compare = f"{ratio(result.rps, bare.rps)} bare; p99 {extra:+.2f} ms"
        row.result = verdict(result.rps >= 0.9 * bare.rps and extra <= 1.0)
    bench.report.add(row)
    for name, label in (("nginx", "nginx"), ("caddy", "Caddy basicauth")):
        base = bench.baselines.get(name)
        if base is None:
            continue
        peer = Row(
            "cached valid token",
            f"... against {label}",
            compare=f"{ratio(result.rps, base.rps)} {name}",
        )
        if name == "caddy" and base.rps:
            peer.target = "stretch: >= 1.0 x Caddy req/s"
            peer.result = verdict(result.rps >= base.rps)
        bench.report.add(peer)


def _check_all_ok(report: Report, scenario: str, result: Load) -> None:
    if result.status_errors or result.socket_errors:
        report.note(
            f"{scenario}: {result.status_errors} error answers and {result.socket_errors} "
            "socket errors during the run: the figure is not of clean traffic"
        )


def cold(bench: Bench, url: str) -> None:
    count = bench.scaled(1500, 200)
    began = time.monotonic()
    tokens = bearer(
        seed.seed_presented(bench.redis_url, count, procs.DEFAULT_HASHING, distinct=True)
    )
    bench.report.note(
        f"cold: seeded {count} tokens, each with its own argon2id hash at the default cost, "
        f"in {time.monotonic() - began:.1f} s"
    )
    result = load.drive(url, tokens, connections=bench.connections, duration=bench.duration)
    row = load_row(
        "many distinct valid tokens (cold)", "each token's first use: argon2 m=12 MiB t=3", result
    )
    wrapped = result.requests > count
    row.compare = "tokens wrapped: some were warm" if wrapped else "no token reused"
    errors = result.status_errors + result.socket_errors
    if errors:
        row.compare += f"; {errors} error answers (a full argon2 queue answers 503 at once)"
    row.target = "(none: shows argon2's cost)"
    bench.report.add(row)
    time.sleep(1)  # let argon2 work still queued from the run drain before the next scenario


# -- store size: 1,000 vs 1,000,000 tokens ------------------------------------------


def store_size(bench: Bench) -> None:
    """The hot path beside a store of 1,000 tokens and one of 1,000,000, measured in turns."""
    total = bench.scaled(1_000_000, 50_000)
    small_redis, small_url = procs.start_redis(bench.processes)
    big_redis, big_url = procs.start_redis(bench.processes)
    small_tokens = bearer(seed.seed_presented(small_url, 1000, procs.CHEAP_HASHING, distinct=True))
    big_tokens = bearer(seed.seed_presented(big_url, 1000, procs.CHEAP_HASHING, distinct=True))
    began = time.monotonic()
    seed.seed_filler(big_url, total - 1000, procs.CHEAP_HASHING)
    bench.report.note(
        f"store size: seeded {total - 1000:,} filler tokens in {time.monotonic() - began:.1f} s"
    )
    small, _, _ = bench.keystile("keystile-1k", small_url, procs.CHEAP_HASHING)
    big, _, _ = bench.keystile("keystile-1m", big_url, procs.CHEAP_HASHING, probe=big_tokens[0])
    for proc, tokens in ((small, small_tokens), (big, big_tokens)):  # every worker sees every token
        load.drive(proc.url + API_PATH, tokens, connections=bench.connections, duration=2)
    targets = {
        "small": (small.url + API_PATH, small_tokens),
        "big": (big.url + API_PATH, big_tokens),
    }
    if bench.bare_url is not None:
        # The same 1,000 Authorization values (the bare proxy ignores them), so
        # wrk runs the same Lua script against both and pays the same for it.
        targets["bare"] = (bench.bare_url, small_tokens)
    found = bench.alternate(targets)
    for name in ("small", "big"):
        _check_all_ok(bench.report, "hot path", found[name])
    _store_size_rows(bench, found, total)
    rss = {name: max(proc.rss_mib().values()) for name, proc in (("1k", small), ("1m", big))}
    bench.report.note(
        f"store size: largest Keystile process {rss['1k']:,.0f} MiB over 1,000 tokens, "
        f"{rss['1m']:,.0f} MiB over {total:,} (each process also serves the admin API)"
    )
    for proc in (small, big, small_redis, big_redis):
        bench.processes.stop(proc)


def _store_size_rows(bench: Bench, found: dict[str, Load], total: int) -> None:
    small, big, bare = found["small"], found["big"], found.get("bare")
    measured = "1,000 distinct cached tokens"
    if bare is not None:
        turns = f"{bench.rounds} alternating runs" if bench.rounds > 1 else "one run each"
        measured_bare = f"bare aiohttp proxy, {turns}, the same 1,000 header values"
        bench.report.add(load_row("hot path", measured_bare, bare))
    row = load_row("hot path, 1,000 tokens in the store", measured, small)
    if bare is not None:
        row.compare = f"{ratio(small.rps, bare.rps)} bare"
    bench.report.add(row)
    row = load_row(f"hot path, {total:,} tokens in the store", measured, big)
    row.compare = f"{ratio(big.rps, small.rps)} the 1,000-token req/s"
    row.target = "within 10 % of 1,000 tokens"
    row.result = verdict(abs(big.rps / small.rps - 1) <= 0.10 if small.rps else False)
    bench.report.add(row)


# -- revocation ------------------------------------------------------------------


def revocations(bench: Bench) -> None:
    replicas = [
        bench.keystile(f"keystile-replica-{i}", bench.redis_url, procs.CHEAP_HASHING, workers=1)
        for i in range(3)
    ]
    admin_url = f"http://127.0.0.1:{replicas[0][1]}"
    admin_token = procs.bootstrap_admin(Path(replicas[0][2]))
    urls = [proc.url + API_PATH for proc, _, _ in replicas]
    for cut, count in ((False, bench.scaled(200, 20)), (True, bench.scaled(20, 3))):
        tokens = seed.seed_presented(bench.redis_url, count, procs.CHEAP_HASHING, distinct=False)
        found = asyncio.run(
            revocation.measure(bench.redis_url, urls, admin_url, admin_token, tokens, cut=cut)
        )
        _revocation_rows(bench, found, count, cut)
    for proc, _, _ in replicas:
        bench.processes.stop(proc)


def _revocation_rows(bench: Bench, found: revocation.Revocations, count: int, cut: bool) -> None:
    percentile = revocation.percentile
    flat = [s * 1000 for s in found.flat()]
    worst_p99 = max(percentile([s * 1000 for s in r], 99) for r in found.latencies)
    worst = max(flat)
    label = "revocation after a pub/sub cut" if cut else "revocation latency"
    row = Row(label, f"{count} revocations x 3 replicas, via {found.via}")
    row.p50_ms, row.p99_ms = percentile(flat, 50), worst_p99
    row.compare = f"max {worst:,.1f} ms"
    if cut:
        row.target, row.result = "max < 1 s", verdict(worst < 1000)
    else:
        row.target, row.result = (
            "p99 < 50 ms on every replica, max < 1 s",
            verdict(worst_p99 < 50 and worst < 1000),
        )
    bench.report.add(row)


# -- memory and admin search at 100,000 tokens ------------------------------------


def memory(bench: Bench) -> None:
    redis, redis_url = procs.start_redis(bench.processes)
    count = bench.scaled(100_000, 5_000)
    began = time.monotonic()
    tokens = bearer(seed.seed_presented(redis_url, count, procs.CHEAP_HASHING, distinct=False))
    bench.report.note(f"memory: seeded {count:,} tokens in {time.monotonic() - began:.1f} s")
    proc, _, _ = bench.keystile("keystile-memory", redis_url, procs.CHEAP_HASHING, workers=1)
    idle = max(proc.rss_mib().values())
    statuses = asyncio.run(load.send_each(proc.url + API_PATH, tokens))
    warm = max(proc.rss_mib().values())
    held = _cached_share(redis_url, proc, tokens, bench.scaled(2000, 500))
    row = Row(f"resident memory, {count:,} cached credentials", "1 worker, one request per token")
    row.compare = f"RSS {warm:,.0f} MiB (idle {idle:,.0f} MiB); {held:.0%} of a sample cached"
    row.target = "< 150 MiB per worker"
    row.result = verdict(warm < 150)
    bench.report.add(row)
    if statuses.get(200, 0) != count:
        bench.report.note(f"memory: warm-up answers were {dict(statuses)}, not {count} x 200")
    _cache_alone(bench, count)
    bench.processes.stop(proc)
    bench.processes.stop(redis)


def _cache_alone(bench: Bench, count: int) -> None:
    """Note what the cache itself holds for ``count`` credentials (bench/cachesize.py).

    The script of the tree measured, like its code: with ``--source`` at an
    older commit, this checkout's script may call what that code lacks.
    """
    done = subprocess.run(
        [sys.executable, str(procs.SOURCE / "bench" / "cachesize.py"), str(count)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "PYTHONPATH": str(procs.SOURCE)},
    )
    if done.returncode != 0:
        bench.report.note("memory: bench/cachesize.py failed: " + done.stderr.strip()[-300:])
        return
    held = int(done.stdout.strip())
    bench.report.note(
        f"memory: the credential cache alone holds {held / 2**20:,.0f} MiB for {count:,} "
        f"entries, {held / count:,.0f} bytes each (tracemalloc, bench/cachesize.py); the rest "
        "of a worker's RSS is the interpreter, the libraries, the admin token index of the "
        "whole store, and the client_ids used within tokens.last_used_interval (last_used_at)"
    )


def _cached_share(redis_url: str, proc: Proc, tokens: list[str], size: int) -> float:
    """Share of a sample of ``tokens`` that ``proc`` answers from its cache.

    The sample's token records are deleted behind Keystile's back (no event, no
    generation bump, which the product never does): a cached credential still
    answers 200, one that was not cached finds nothing in the store and gets 401.
    """
    sample = random.sample(tokens, min(size, len(tokens)))
    client = redis.Redis.from_url(redis_url)
    try:
        ids = [tokenformat.parse_token("ks", t.removeprefix("Bearer ")).client_id for t in sample]
        client.delete(*(keys.token(client_id) for client_id in ids))
    finally:
        client.close()
    statuses = asyncio.run(load.send_each(proc.url + API_PATH, sample))
    return statuses.get(200, 0) / len(sample)


def admin_search(bench: Bench) -> None:
    """Run bench/admin_search.py (the admin API's own benchmark) and fold in its figures."""
    count = bench.scaled(100_000, 5_000)
    scenario = f"admin search and sort, {count:,} tokens"
    script = procs.SOURCE / "bench" / "admin_search.py"
    if not script.exists():
        bench.report.add(Row(scenario, "not available yet"))
        return
    command = [sys.executable, str(script), "--tokens", str(count)]
    command += ["--repeat", str(bench.scaled(15, 3))]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "PYTHONPATH": str(procs.SOURCE)},
    )
    try:
        figures = json.loads(done.stdout)
    except ValueError:
        bench.report.add(Row(scenario, f"bench/admin_search.py failed (exit {done.returncode})"))
        bench.report.note("admin search: " + done.stderr.strip()[-1500:])
        return
    for name, value in figures.items():
        if isinstance(value, dict) and "median_ms" in value:
            row = Row(scenario, f"GET /admin/v1/tokens {name}", p50_ms=value["median_ms"])
            row.compare = f"p95 {value['p95_ms']:,.1f} ms"
            row.target, row.result = "< 300 ms", verdict(value["p95_ms"] < 300)
            bench.report.add(row)
        elif name.startswith("first call"):
            bench.report.add(Row(scenario, name, compare=f"{value:,.0f} ms"))
