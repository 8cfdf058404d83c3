"""What an acknowledged admin change means: the wait after each committed transaction.

``redis.durability`` picks it (docs/durability.md):

- ``local``: EXEC answered; the change lasts as long as the server's own
  persistence keeps it (``appendfsync everysec``: up to a second may be lost
  in a crash). No wait.
- ``fsync``: ``WAITAOF 1 0``: the primary has written the change to its
  append-only file and fsynced it.
- ``replicas``: ``WAIT min_replicas``: that many replicas have received it.

WAIT and WAITAOF wait for the writes *of the connection they are sent on*
(the server remembers each client's last write offset), so the wait must go
over the very connection that sent the EXEC. redis-py hands a pipeline's
connection back to the pool as soon as EXEC answers; ``Commit`` therefore
takes one connection out of the pool for the whole transaction and lends it
to the pipeline through a pool of one (``_Lent``), then sends the wait on it.

Inside MULTI neither command blocks (the server answers at once with what is
already confirmed), so it cannot ride in the transaction itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import RedisError

from sidecar.config import RedisConfig
from sidecar.errors import KeystileError

MODES = ("local", "fsync", "replicas")


class NotDurable(KeystileError):
    """The change is on the primary, but the configured durability was not confirmed."""

    status = 503
    code = "not_durable"
    public_message = "the change was applied on the primary but its durability was not confirmed"

    def message(self) -> str:
        # The reason is ours: what was asked and what the server answered, never a request byte.
        return (
            f"{self.public_message} ({self.reason}); it may be lost if the primary fails now: "
            "read it back before retrying"
        )


@dataclass(frozen=True)
class Durability:
    mode: str = "local"
    min_replicas: int = 1
    timeout_ms: int = 1000
    #: Seconds a command may take on top of the wait before the connection counts as lost.
    read_slack: float = 2.0

    @classmethod
    def from_config(cls, redis: RedisConfig) -> Durability:
        return cls(redis.durability, redis.min_replicas, redis.durability_timeout_ms, redis.timeout)

    def command(self) -> tuple[str | int, ...] | None:
        """The wait to send after each committed change; None in ``local`` mode."""
        if self.mode == "fsync":
            return ("WAITAOF", 1, 0, self.timeout_ms)
        if self.mode == "replicas":
            return ("WAIT", self.min_replicas, self.timeout_ms)
        return None

    def shortfall(self, reply: Any) -> str | None:
        """None when ``reply`` (to ``command()``) confirms the change, else what fell short."""
        if self.mode == "fsync":
            local = int(reply[0])
            return None if local >= 1 else f"WAITAOF: not fsynced within {self.timeout_ms} ms"
        count = int(reply)
        if count >= self.min_replicas:
            return None
        return (
            f"WAIT: {count} of {self.min_replicas} replica(s) confirmed within {self.timeout_ms} ms"
        )

    @asynccontextmanager
    async def commit(self, redis: aioredis.Redis) -> AsyncIterator[Commit]:
        """A transaction pipeline whose connection stays for the wait after its EXEC."""
        if self.command() is None:
            async with redis.pipeline(transaction=True) as pipe:
                yield Commit(self, pipe, None)
            return
        pool = redis.connection_pool
        connection = await pool.get_connection()
        try:
            lent = cast(ConnectionPool, _Lent(pool, connection))
            async with Pipeline(lent, redis.response_callbacks, True, None) as pipe:
                yield Commit(self, pipe, connection)
        finally:
            await asyncio.shield(pool.release(connection))


@dataclass
class Commit:
    durability: Durability
    pipe: Pipeline
    connection: AbstractConnection | None

    async def confirm(self) -> str | None:
        """Wait as configured, on the transaction's own connection; what fell short, or None."""
        command = self.durability.command()
        if command is None or self.connection is None:
            return None
        wait = self.durability.timeout_ms / 1000 + self.durability.read_slack
        try:
            await self.connection.send_command(*command)
            reply = await self.connection.read_response(timeout=wait)
        except (RedisError, OSError) as exc:
            # EXEC answered: the change is applied; only its confirmation is unknown.
            return f"{command[0]} failed: {type(exc).__name__}"
        if reply is None:
            # redis-py answers a read past an explicit timeout with None and keeps the
            # connection: its late reply would be read by the connection's next user.
            await self.connection.disconnect()
            return f"{command[0]}: no answer within {wait:g} s"
        return self.durability.shortfall(reply)


class _Lent:
    """A pool of one lent connection: the pipeline uses it and never gives it back."""

    def __init__(self, pool: ConnectionPool, connection: AbstractConnection) -> None:
        self._pool = pool
        self._connection = connection

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        return self._connection

    async def release(self, connection: AbstractConnection) -> None:
        """Kept for the wait; ``Durability.commit`` returns it to the real pool."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)
