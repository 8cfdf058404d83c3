"""Fixtures with real parts: one redis-server for the session, flushed for each test,
and real aiohttp upstreams on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from sidecar.store.management import AdminStore
from tests.kits.proxy import Env, running
from tests.kits.redis import RedisProcess


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisProcess) -> str:
    """A fresh, empty database for each test."""
    redis_server.flush()
    return redis_server.url


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[AdminStore]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield AdminStore(client)
    await client.aclose()


@pytest.fixture
async def env(redis_url: str, store: AdminStore) -> AsyncIterator[Env]:
    """A proxy on loopback in front of a real upstream, with seeded tokens (tests/kits/proxy.py)."""
    async with running(redis_url, store) as started:
        yield started


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of the test's own, which the test may stop and restart."""
    server = RedisProcess(tmp_path / "private-redis")
    server.start()
    yield server
    server.stop()
