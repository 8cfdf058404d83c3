"""Real parts for the tests: a redis-server process, configs, seeded tokens."""

from __future__ import annotations

import base64
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import redis

from sidecar import clock, config
from sidecar.ops import embedded
from sidecar.records import Role, User
from sidecar.store.management import AdminStore
from sidecar.verification.hashing import Argon2Hasher
from sidecar.verification.issuing import Issued, issue_token

#: The cheapest argon2id, set through the same config a deployment uses.
CHEAP_HASHING = {"memory_kib": 8, "time_cost": 1, "parallelism": 1}


class Clock:
    """A monotonic clock that stands still until the test moves ``now``."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def basic(credentials: str | bytes) -> str:
    """The ``Authorization`` value for Basic ``credentials`` (RFC 7617), usually ``id:secret``."""
    raw = credentials.encode() if isinstance(credentials, str) else credentials
    return "Basic " + base64.b64encode(raw).decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisProcess:
    """A redis-server child on a free port, from the binary the dependencies install."""

    def __init__(
        self, workdir: Path, *args: str, binary: str | None = None, durable: bool = False
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        #: Every write on disk before it is acknowledged (the AOF, fsynced per write).
        self.durable = durable
        self.process: subprocess.Popen[bytes] | None = None
        #: Settings after the defaults (a later one wins), and another server binary.
        self.args = args
        self.binary = binary

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = self.binary or embedded.find_binary(None)
        self.workdir.mkdir(parents=True, exist_ok=True)
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.durable
            else ["--appendonly", "no"]
        )
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             *persistence, "--dir", str(self.workdir), *self.args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last save; what is on disk is what survives."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)

    def flush(self) -> None:
        client = redis.Redis(port=self.port)
        client.flushall()
        client.close()


def make_config(
    redis_url: str | None = None,
    apis: list[Mapping[str, Any]] | None = None,
    **sections: Mapping[str, Any],
) -> config.Config:
    raw: dict[str, Any] = {"hashing": CHEAP_HASHING, "apis": apis or []}
    if redis_url:
        raw["redis"] = {"url": redis_url}
    raw.update(sections)
    return config.parse(raw, {})


async def seed_token(
    store: AdminStore,
    cfg: config.Config,
    *,
    user: str = "alice",
    access: Mapping[str, str] | None = None,
    role: str | None = None,
    months: int = 6,
) -> Issued:
    """Create the user (if needed) and a token for it, as the admin API would."""
    now = clock.now()
    await store.ensure_user(User(user, created_at=clock.to_rfc3339(now)), actor="test")
    return await issue_token(
        store,
        Argon2Hasher(cfg.hashing),
        cfg.tokens.prefix,
        user=user,
        actor="test",
        expires_at=clock.add_months(now, months),
        access=access or {},
        role=role,
    )


async def seed_role(store: AdminStore, name: str, access: Mapping[str, str]) -> Role:
    role = Role(name, f"{name} role", dict(access))
    await store.put_role(role, actor="test")
    return role
