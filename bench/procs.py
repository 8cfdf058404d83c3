"""Starting and stopping the real processes a benchmark measures.

Everything listens on a free 127.0.0.1 port and writes its log into the run's
directory. Each process is started in its own session, so ``stop`` can end it
and the workers it forked (its process group) without touching anything else
on the machine. ``Processes`` remembers what it started and stops it all at
the end of the run, also after an error.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from sidecar.ops.embedded import find_binary

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
#: The Keystile source tree that runs: this working tree, or a checkout given
#: to ``run.py --source`` (to measure a commit while the tree is being edited).
SOURCE = REPO

#: Cheap but real argon2id, for scenarios that must warm many tokens fast;
#: the hot path never runs argon2 once a credential is cached.
CHEAP_HASHING = {"memory_kib": 1024, "time_cost": 1, "parallelism": 1}
#: The product's defaults (OWASP's m=12 MiB, t=3, p=1), for the cold scenario.
DEFAULT_HASHING = {"memory_kib": 12288, "time_cost": 3, "parallelism": 1}


class StartFailed(RuntimeError):
    """A process did not come up; the message names its log file."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, wait: float = 10.0) -> None:
        if not self.alive():
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
            self.popen.wait(wait)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
        except ProcessLookupError:
            pass

    def rss_mib(self) -> dict[int, float]:
        """Resident memory of the process and of each process it forked, by pid (Linux)."""
        tree, parents = {self.popen.pid}, _parents()
        while grown := {pid for pid, ppid in parents.items() if ppid in tree} - tree:
            tree |= grown
        return {pid: rss for pid in tree if (rss := _rss_mib(pid)) is not None}

    def cpu_seconds(self) -> float:
        """CPU time used so far by the process and every process it forked (Linux)."""
        return sum(_cpu_seconds(pid) for pid in self.rss_mib())

    def wait_until_idle(self, timeout: float = 600.0, busy: float = 0.1) -> float:
        """Wait until start-up work (loading indexes...) is done; answers the seconds waited.

        Idle: the process tree used under ``busy`` of one core over half a second.
        """
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            used = self.cpu_seconds()
            time.sleep(0.5)
            if self.cpu_seconds() - used < busy * 0.5:
                break
        return time.monotonic() - began


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # utime and stime are fields 14 and 15 of stat(5); [1:] here starts at field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _parents() -> dict[int, int]:
    """pid -> parent pid for every process, from /proc."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(stat.parent.name)] = int(fields[1])
    return out


def _rss_mib(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


@dataclass
class Processes:
    workdir: Path
    started: list[Proc] = field(default_factory=list)

    def spawn(
        self, name: str, command: list[str], port: int, env: dict[str, str] | None = None
    ) -> Proc:
        log = self.workdir / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **(env or {})},
                cwd=self.workdir,
            )
        proc = Proc(name, popen, port, log)
        self.started.append(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        proc.stop()
        if proc in self.started:
            self.started.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            proc.stop()
        self.started.clear()


def wait_until_ready(proc: Proc, path: str = "/", timeout: float = 20.0) -> None:
    """Poll ``path`` until it answers (any status; 200 for readiness paths)."""
    deadline = time.monotonic() + timeout
    need_ok = "ready" in path
    while time.monotonic() < deadline:
        if not proc.alive():
            raise StartFailed(f"{proc.name} exited at start; see {proc.log}")
        status = http_status(proc.port, path)
        if status is not None and (status == 200 or not need_ok):
            return
        time.sleep(0.05)
    raise StartFailed(f"{proc.name} did not answer within {timeout} s; see {proc.log}")


def http_status(port: int, path: str, headers: dict[str, str] | None = None) -> int | None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path, headers=headers or {})
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


# -- the processes ------------------------------------------------------------


def start_redis(procs: Processes) -> tuple[Proc, str]:
    port = free_port()
    datadir = procs.workdir / f"redis-{port}"
    datadir.mkdir()
    command = [
        find_binary(None), "--port", str(port), "--bind", "127.0.0.1",
        "--save", "", "--appendonly", "no", "--dir", str(datadir),
    ]  # fmt: skip
    proc = procs.spawn(f"redis-{port}", command, port)
    deadline = time.monotonic() + 10
    while not _redis_answers(port):
        if time.monotonic() > deadline or not proc.alive():
            raise StartFailed(f"redis-server did not start; see {proc.log}")
        time.sleep(0.02)
    return proc, f"redis://127.0.0.1:{port}/0"


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
            probe.sendall(b"PING\r\n")
            return probe.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_upstream(procs: Processes) -> Proc:
    port = free_port()
    command = [sys.executable, str(BENCH / "upstream.py"), "--port", str(port)]
    proc = procs.spawn("upstream", command, port)
    wait_until_ready(proc)
    return proc


def start_bare_proxy(procs: Processes, upstream: Proc, workers: int, uvloop: bool) -> Proc:
    port = free_port()
    command = [
        sys.executable, str(BENCH / "bare_proxy.py"), "--port", str(port),
        "--upstream", upstream.url, "--workers", str(workers),
    ] + (["--uvloop"] if uvloop else [])  # fmt: skip
    proc = procs.spawn("bare-proxy", command, port)
    wait_until_ready(proc)
    return proc


def keystile(*arguments: str) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that run ``keystile`` from ``SOURCE``.

    ``python -m`` puts the working directory first on sys.path: callers run it
    in ``SOURCE`` or in a directory with no Python package of its own.
    """
    command = [sys.executable, "-m", "admin.cli", *arguments]
    return command, {**os.environ, "PYTHONPATH": str(SOURCE)}


def keystile_supports_workers() -> bool:
    command, env = keystile("serve", "--help")
    help_text = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=SOURCE, check=False
    )
    return "--workers" in help_text.stdout


def keystile_uses_uvloop() -> bool:
    """Whether Keystile runs on uvloop, so the bare proxy can match it."""
    sources = [*(SOURCE / "sidecar").glob("*.py"), *(SOURCE / "admin").glob("*.py")]
    return any("uvloop" in path.read_text(encoding="utf-8") for path in sources)


def write_keystile_config(
    procs: Processes, name: str, redis_url: str, upstream: Proc, hashing: dict[str, int]
) -> tuple[Path, int, int]:
    """A config with one API, ``bench`` at ``/bench``; returns (path, proxy port, admin port)."""
    proxy_port, admin_port = free_port(), free_port()
    hashing_lines = "\n".join(f"{key} = {value}" for key, value in hashing.items())
    text = f"""\
[proxy]
listen = "127.0.0.1:{proxy_port}"

[admin]
listen = "127.0.0.1:{admin_port}"

[redis]
url = "{redis_url}"

[hashing]
{hashing_lines}

[[apis]]
name = "bench"
prefix = "/bench"
upstream = "{upstream.url}"
description = "benchmark upstream"
"""
    path = procs.workdir / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path, proxy_port, admin_port


def start_keystile(
    procs: Processes, name: str, config: Path, proxy_port: int, workers: int | None
) -> Proc:
    command, env = keystile("serve", "--config", str(config))
    if workers is not None:
        command += ["--workers", str(workers)]
    proc = procs.spawn(name, command, proxy_port, env)
    wait_until_ready(proc, "/_keystile/readyz", timeout=30)
    return proc


def bootstrap_admin(config: Path, user: str = "bench-admin") -> str:
    """A full admin token from ``keystile bootstrap``, as an operator gets one."""
    command, env = keystile("bootstrap", "--config", str(config), "--user", user)
    done = subprocess.run(
        command,
        env=env,
        cwd=SOURCE,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip().splitlines()[-1]
