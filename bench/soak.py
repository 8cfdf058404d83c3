"""The soak: a steady load for many minutes, a revoke every second, Redis restarts.

Against ``keystile serve --workers 2`` on a real redis-server with
``appendonly yes`` (its own data directory and port), an aiohttp client sends
requests at a fixed rate over a pool of valid tokens. Every second the
scenario creates one token and revokes the oldest of the pool through the
admin API; each revoked token is then probed for ``PROBE_FOR`` seconds, and
any 200 more than 1 s after its revoke answered counts against the run.
Every ``restart_every`` minutes Redis is stopped (SIGTERM and kill -9 in
turn) and started again on the same port and append-only file.

At the end every acknowledged create and revoke is checked against the store
(the token exists; the revoked ones say so), every revoked token is presented
once more, and the RSS and open file descriptors of each Keystile process
(supervisor and workers) are compared with those at the start.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import procs
import redis.asyncio as aioredis
from context import API_PATH, Bench
from procs import Proc, Processes
from report import Row, verdict

from sidecar.ops.embedded import find_binary
from sidecar.store import keys

POOL = 100  # valid tokens the load cycles over
PROBE_FOR = 10.0  # seconds each revoked token keeps being probed
GRACE = 1.0  # the spec's bound on a revoke reaching every replica
#: 5xx and socket errors from the kill until this long after Redis answers PING again
#: are the restart's, not a defect.
WINDOW_AFTER = 5.0
CONNECTIONS = 64


@dataclass(frozen=True)
class Settings:
    minutes: float = 30.0
    restart_every: float = 5.0  # minutes
    rate: int = 200  # requests per second
    #: Redis's own setting. "always": a write is fsynced before Redis answers, so an
    #: acknowledged change survives kill -9 on any Redis; "everysec" may lose the last
    #: second (redis.durability = "fsync" closes that gap, on Redis 7.2 or later).
    appendfsync: str = "always"


@dataclass
class State:
    pool: deque[tuple[str, str]] = field(default_factory=deque)  # (client_id, bearer)
    created: set[str] = field(default_factory=set)  # acknowledged creates
    revoked: dict[str, tuple[str, float]] = field(default_factory=dict)  # id -> (bearer, t)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: list[tuple[float, str]] = field(default_factory=list)  # (time, 5xx or socket)
    stale: list[tuple[str, float]] = field(default_factory=list)  # (id, seconds after revoke)
    refused_valid: int = 0
    admin_failures: Counter[str] = field(default_factory=Counter)
    restarts: list[tuple[str, float, float]] = field(default_factory=list)  # kind, down, up
    probes: int = 0
    latencies: list[float] = field(default_factory=list)  # proxied requests, seconds
    seconds: float = 0.0  # how long the load ran


class Redis:
    """One redis-server with an append-only file, restartable on its port."""

    def __init__(self, processes: Processes, appendfsync: str) -> None:
        self.processes, self.port = processes, procs.free_port()
        self.appendfsync = appendfsync
        self.datadir = processes.workdir / f"soak-redis-{self.port}"
        self.datadir.mkdir()
        self.proc = self._start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _start(self) -> Proc:
        command = [
            find_binary(None), "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "yes", "--appendfsync", self.appendfsync,
            "--dir", str(self.datadir),
        ]  # fmt: skip
        proc = self.processes.spawn(f"soak-redis-{self.port}", command, self.port)
        deadline = time.monotonic() + 30
        while not procs._redis_answers(self.port):
            if time.monotonic() > deadline or not proc.alive():
                raise procs.StartFailed(f"redis-server did not start; see {proc.log}")
            time.sleep(0.02)
        return proc

    def restart(self, hard: bool) -> None:
        if hard:
            os.killpg(self.proc.popen.pid, signal.SIGKILL)
            self.proc.popen.wait()
        self.processes.stop(self.proc)
        self.proc = self._start()


def run(bench: Bench, settings: Settings) -> None:
    store = Redis(bench.processes, settings.appendfsync)
    config, proxy_port, admin_port = procs.write_keystile_config(
        bench.processes, "keystile-soak", store.url, bench.upstream, procs.CHEAP_HASHING
    )
    proc = procs.start_keystile(bench.processes, "keystile-soak", config, proxy_port, 2)
    proc.wait_until_idle()
    admin_token = procs.bootstrap_admin(config)
    state = State()
    ports = {store.port: "redis", bench.upstream.port: "upstream", proxy_port: "proxy",
             admin_port: "admin"}  # fmt: skip
    before = _footprint(proc, ports)
    asyncio.run(_soak(proc, f"http://127.0.0.1:{admin_port}", admin_token, store, settings, state))
    time.sleep(1)  # let the workers close the load's keep-alive connections
    after = _footprint(proc, ports)
    lost = asyncio.run(_lost_writes(store.url, state))
    final = asyncio.run(_final_probe(proc.url + API_PATH, state))
    _report(bench, settings, state, lost, final, before, after, proc.popen.pid)
    bench.processes.stop(proc)
    bench.processes.stop(store.proc)


def _footprint(proc: Proc, ports: dict[int, str]) -> dict[int, tuple[float, int, str]]:
    """pid -> (RSS MiB, open fds, what the sockets among them lead to) per Keystile process."""
    peers = _tcp_peers()
    out = {}
    for pid, rss in proc.rss_mib().items():
        kinds: Counter[str] = Counter()
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            links = []
        for link in links:
            if link.startswith("socket:["):
                kinds[_socket_kind(*peers.get(link[8:-1], (0, 0)), ports)] += 1
        shown = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
        out[pid] = (rss, len(links), shown or "no sockets")
    return out


def _socket_kind(local: int, remote: int, ports: dict[int, str]) -> str:
    if remote in ports:
        return f"to {ports[remote]}"
    if local in ports:
        return f"listening on {ports[local]}" if remote == 0 else f"client of {ports[local]}"
    return "other (unix or pipe)" if local == 0 else "other"


def _tcp_peers() -> dict[str, tuple[int, int]]:
    """socket inode -> (local port, remote port) for every TCP socket, from /proc/net."""
    out = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote = (int(a.rsplit(":", 1)[1], 16) for a in fields[1:3])
            out[fields[9]] = (local, remote)
    return out


async def _soak(
    proc: Proc, admin_url: str, admin_token: str, store: Redis, s: Settings, state: State
) -> None:
    headers = {"Authorization": f"Bearer {admin_token}"}
    timeout = aiohttp.ClientTimeout(total=5)
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as load,
        aiohttp.ClientSession(headers=headers, timeout=timeout) as admin,
    ):
        while len(state.pool) < POOL:
            await _create(admin, admin_url, state)
        end = time.monotonic() + s.minutes * 60
        await asyncio.gather(
            _load(load, proc.url + API_PATH, s.rate, end, state),
            _churn(admin, admin_url, end, state),
            _probe(load, proc.url + API_PATH, end, state),
            _restarts(store, s.restart_every * 60, end, state),
        )


async def _create(admin: aiohttp.ClientSession, admin_url: str, state: State) -> None:
    body = {"user": "bench-admin", "access": {"bench": "full"}, "expires_in_months": 6}
    try:
        async with admin.post(f"{admin_url}/admin/v1/tokens", json=body) as response:
            found = await response.json(content_type=None)
            if response.status != 201:
                state.admin_failures[f"create {response.status}"] += 1
                return
    except (aiohttp.ClientError, TimeoutError) as exc:
        state.admin_failures[f"create {type(exc).__name__}"] += 1
        return
    state.created.add(found["client_id"])
    state.pool.append((found["client_id"], f"Bearer {found['token']}"))


async def _revoke(admin: aiohttp.ClientSession, admin_url: str, state: State) -> None:
    client_id, bearer = state.pool.popleft()
    try:
        async with admin.post(f"{admin_url}/admin/v1/tokens/{client_id}/revoke", json={}) as r:
            await r.read()
            if r.status != 200:
                state.admin_failures[f"revoke {r.status}"] += 1
                state.pool.append((client_id, bearer))  # not revoked: still valid
                return
    except (aiohttp.ClientError, TimeoutError) as exc:
        # Unknown outcome: neither valid nor acknowledged; keep it out of both.
        state.admin_failures[f"revoke {type(exc).__name__}"] += 1
        return
    state.revoked[client_id] = (bearer, time.monotonic())


async def _churn(admin: aiohttp.ClientSession, admin_url: str, end: float, state: State) -> None:
    """One create and one revoke a second, on a fixed beat."""
    beat = time.monotonic()
    while beat < end:
        await _create(admin, admin_url, state)
        if len(state.pool) > POOL // 2:
            await _revoke(admin, admin_url, state)
        beat += 1.0
        await asyncio.sleep(max(0.0, beat - time.monotonic()))


async def _load(
    session: aiohttp.ClientSession, url: str, rate: int, end: float, state: State
) -> None:
    """Open loop: request i starts at t0 + i/rate however long earlier ones take."""
    tasks: set[asyncio.Task[None]] = set()
    t0, i = time.monotonic(), 0
    while (due := t0 + i / rate) < end:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        client_id, bearer = state.pool[i % len(state.pool)]
        task = asyncio.create_task(_one(session, url, client_id, bearer, state))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        i += 1
    await asyncio.gather(*tasks)
    state.seconds = time.monotonic() - t0


async def _one(
    session: aiohttp.ClientSession, url: str, client_id: str, bearer: str, state: State
) -> None:
    began = time.perf_counter()
    try:
        async with session.get(url, headers={"Authorization": bearer}) as response:
            await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        state.errors.append((time.monotonic(), type(exc).__name__))
        return
    state.latencies.append(time.perf_counter() - began)
    state.statuses[status] += 1
    if status >= 500:
        state.errors.append((time.monotonic(), str(status)))
    elif status == 401 and any(cid == client_id for cid, _ in state.pool):
        # Still in the pool, so never sent for revoking: a valid token refused.
        state.refused_valid += 1


async def _probe(session: aiohttp.ClientSession, url: str, end: float, state: State) -> None:
    """Present each token revoked in the last PROBE_FOR seconds, every 0.2 s."""
    while time.monotonic() < end:
        now = time.monotonic()
        recent = [(cid, b, t) for cid, (b, t) in state.revoked.items() if now - t < PROBE_FOR]
        await asyncio.gather(*(_probe_one(session, url, *r, state) for r in recent))
        await asyncio.sleep(0.2)


async def _probe_one(
    session: aiohttp.ClientSession, url: str, client_id: str, bearer: str, t: float, state: State
) -> None:
    try:
        async with session.get(url, headers={"Authorization": bearer}) as response:
            await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError):
        return
    state.probes += 1
    after = time.monotonic() - t
    if status == 200 and after > GRACE:
        state.stale.append((client_id, after))


async def _restarts(store: Redis, every: float, end: float, state: State) -> None:
    hard = False
    next_at = time.monotonic() + every
    while next_at < end:
        await asyncio.sleep(next_at - time.monotonic())
        down = time.monotonic()
        await asyncio.to_thread(store.restart, hard)
        state.restarts.append(("kill -9" if hard else "SIGTERM", down, time.monotonic()))
        hard, next_at = not hard, next_at + every


async def _lost_writes(redis_url: str, state: State) -> tuple[int, int]:
    """(acknowledged creates missing from the store, acknowledged revokes not revoked)."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        pipe = client.pipeline(transaction=False)
        ids = sorted(state.created)
        for client_id in ids:
            pipe.hget(keys.token(client_id), "revoked")
        found = dict(zip(ids, await pipe.execute(), strict=True))
    finally:
        await client.aclose()
    missing = sum(1 for value in found.values() if value is None)
    unrevoked = sum(1 for cid in state.revoked if found.get(cid) not in ("1", "true"))
    return missing, unrevoked


async def _final_probe(url: str, state: State) -> Counter[int]:
    """Every revoked token, presented once more after the run."""
    out: Counter[int] = Counter()
    async with aiohttp.ClientSession() as session:
        for bearer, _ in state.revoked.values():
            async with session.get(url, headers={"Authorization": bearer}) as response:
                await response.read()
                out[response.status] += 1
    return out


def _outside_restarts(state: State) -> list[tuple[float, str]]:
    windows = [(down, up + WINDOW_AFTER) for _, down, up in state.restarts]
    return [(t, e) for t, e in state.errors if not any(a <= t <= b for a, b in windows)]


def _report(
    bench: Bench,
    s: Settings,
    state: State,
    lost: tuple[int, int],
    final: Counter[int],
    before: dict[int, tuple[float, int, str]],
    after: dict[int, tuple[float, int, str]],
    supervisor: int,
) -> None:
    report, total = bench.report, sum(state.statuses.values())
    scenario = f"soak, {s.minutes:g} min at {s.rate} req/s, 2 workers"
    stale = Row(scenario, f"{len(state.revoked)} revokes, {state.probes:,} probes after them")
    stale.compare = f"{len(state.stale)} answers 200 more than {GRACE:g} s after the revoke"
    stale.target, stale.result = "0", verdict(not state.stale and final.get(200, 0) == 0)
    report.add(stale)
    missing, unrevoked = lost
    lost_row = Row(
        scenario, f"{len(state.created)} acknowledged creates, {len(state.revoked)} revokes"
    )
    lost_row.compare = f"{missing} creates and {unrevoked} revokes missing from the store"
    lost_row.target, lost_row.result = "0", verdict(missing == 0 and unrevoked == 0)
    report.add(lost_row)
    outside = _outside_restarts(state)
    errors = Row(scenario, f"{total:,} proxied answers, {len(state.restarts)} Redis restarts")
    errors.compare = f"{len(outside)} 5xx/socket errors outside the restarts"
    errors.compare += f" ({len(state.errors) - len(outside)} inside)"
    errors.target, errors.result = "0", verdict(not outside)
    errors.rps = total / state.seconds if state.seconds else None
    errors.p50_ms, errors.p99_ms = (
        _percentile(state.latencies, 50),
        _percentile(state.latencies, 99),
    )
    report.add(errors)
    report.note(
        "soak: load from its own aiohttp client at a fixed rate (open loop) over "
        f"{CONNECTIONS} connections and a pool of {POOL} valid tokens, plus probes of the "
        f"revoked tokens every 0.2 s for {PROBE_FOR:g} s after each revoke"
    )
    report.note(
        f"soak: statuses {dict(sorted(state.statuses.items()))}; valid pool tokens refused "
        f"{state.refused_valid}; failed admin calls {dict(state.admin_failures)}; every revoked "
        f"token presented after the run: {dict(final)}"
    )
    downs = ", ".join(f"{kind} {up - down:.2f} s" for kind, down, up in state.restarts)
    report.note(
        f"soak: Redis restarts (time until it answered PING again): {downs or 'none'}; the "
        f"excluded window runs from the kill until {WINDOW_AFTER:g} s after PING answers; "
        f"Redis {_redis_version()} with appendonly yes, appendfsync {s.appendfsync}; "
        'redis.durability = "local" (the default)'
    )
    inside = [e for e in state.errors if e not in outside]
    report.note(
        f"soak: errors outside the restarts: {dict(Counter(e for _, e in outside))}; "
        f"inside: {dict(Counter(e for _, e in inside))}"
    )
    for pid in sorted(set(before) | set(after)):
        (rss0, fd0, kinds0), (rss1, fd1, kinds1) = (
            found.get(pid, (0.0, 0, "gone")) for found in (before, after)
        )
        role = "supervisor" if pid == supervisor else _command(pid)
        report.note(
            f"soak: {role} pid {pid}: RSS {rss0:.1f} -> {rss1:.1f} MiB, open fds {fd0} -> {fd1} "
            f"(sockets at the start: {kinds0}; at the end: {kinds1})"
        )


def _redis_version() -> str:
    done = subprocess.run(
        [find_binary(None), "--version"], capture_output=True, text=True, check=False
    )
    return done.stdout.split("v=")[-1].split()[0] if "v=" in done.stdout else "?"


def _percentile(values: list[float], p: float) -> float | None:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] * 1000 if ordered else None


def _command(pid: int) -> str:
    """What a child of the supervisor is: a worker, or multiprocessing's resource tracker."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "child"
    text = " ".join(a.decode(errors="replace") for a in argv if a)
    return "resource tracker" if "resource_tracker" in text else "worker"
