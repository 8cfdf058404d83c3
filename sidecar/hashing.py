"""Secret hashing behind a small interface: argon2id in production and tests.

Tests use the cheapest parameters through the same ``[hashing]`` config a
deployment uses, never a different implementation.
"""

from __future__ import annotations

from typing import Protocol

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from sidecar.config import HashingConfig


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
        try:
            return self._hasher.check_needs_rehash(secret_hash)
        except InvalidHashError:
            return True
