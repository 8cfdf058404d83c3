"""Secret hashing behind a small interface: argon2id in production and tests.

Tests use the cheapest parameters through the same ``[hashing]`` config a
deployment uses, never a different implementation.

``HashingPool`` keeps argon2 off the event loop: a thread per core (argon2's C
code runs without the GIL, so the threads really run in parallel) and a
bounded queue. When ``threads + queue_size`` jobs are already running or
waiting, a new one is refused at once with ``Overloaded`` (503): under a flood
a fast refusal beats a backlog in which every request times out anyway.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from sidecar.config import HashingConfig
from sidecar.errors import Overloaded

T = TypeVar("T")


class Hasher(Protocol):
    def hash(self, secret: str) -> str: ...

    def verify(self, secret_hash: str, secret: str) -> bool: ...

    def needs_rehash(self, secret_hash: str) -> bool: ...


class Argon2Hasher:
    """argon2id; ``verify`` is CPU-bound and belongs in a thread pool."""

    def __init__(self, config: HashingConfig) -> None:
        self._hasher = PasswordHasher(
            time_cost=config.time_cost,
            memory_cost=config.memory_kib,
            parallelism=config.parallelism,
            type=Type.ID,
        )

    def hash(self, secret: str) -> str:
        return self._hasher.hash(secret)

    def verify(self, secret_hash: str, secret: str) -> bool:
        # argon2 compares the derived key in constant time.
        try:
            return self._hasher.verify(secret_hash, secret)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, secret_hash: str) -> bool:
        """Whether ``secret_hash`` was made with other parameters than the configured ones."""
        try:
            return self._hasher.check_needs_rehash(secret_hash)
        except InvalidHashError:
            return True


def cores() -> int:
    """CPUs this process may run on (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # macOS has no sched_getaffinity
        return os.cpu_count() or 1


class HashingPool:
    """Runs a ``Hasher`` in worker threads, refusing work beyond a bounded queue."""

    def __init__(self, hasher: Hasher, threads: int, queue_size: int) -> None:
        self.hasher = hasher
        self.limit = threads + queue_size
        #: Jobs submitted and not finished (running or queued).
        self.pending = 0
        #: Verifications run, and jobs refused because the queue was full (for metrics).
        self.verifications = 0
        self.refused = 0
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="argon2")

    @classmethod
    def from_config(cls, config: HashingConfig) -> HashingPool:
        return cls(Argon2Hasher(config), config.threads or cores(), config.queue_size)

    async def verify(self, secret_hash: str, secret: str) -> bool:
        matches = await self._run(self.hasher.verify, secret_hash, secret)
        self.verifications += 1
        return matches

    async def hash(self, secret: str) -> str:
        return await self._run(self.hasher.hash, secret)

    def needs_rehash(self, secret_hash: str) -> bool:
        # Parses the hash's parameter string only: cheap enough for the event loop.
        return self.hasher.needs_rehash(secret_hash)

    async def _run(self, work: Callable[..., T], *args: str) -> T:
        if self.pending >= self.limit:
            self.refused += 1
            raise Overloaded(f"argon2 queue full ({self.pending} jobs)")
        self.pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)
        finally:
            self.pending -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
