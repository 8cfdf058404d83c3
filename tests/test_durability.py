"""What an acknowledged admin change means: ``redis.durability`` against real servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.kits import processes
from tests.kits.admin import harness
from tests.kits.redis import RedisProcess
from tests.kits.servers import info, pause, replicated, valkey_binary


@pytest.fixture
def valkey(tmp_path: Path) -> Iterator[RedisProcess]:
    """A Valkey 8 server with its append-only file on."""
    server = RedisProcess(tmp_path / "valkey", "--appendonly", "yes", binary=valkey_binary())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[RedisProcess, RedisProcess]]:
    with replicated(tmp_path) as servers:
        yield servers


def waitaof_calls(server: RedisProcess) -> int:
    return int(info(server, "commandstats").get("cmdstat_waitaof", {}).get("calls", 0))


def write_config(path: Path, url: str, durability: str) -> Path:
    path.write_text(
        f'[redis]\nurl = "{url}"\ndurability = "{durability}"\n'
        f'[proxy]\nlisten = "127.0.0.1:0"\n[admin]\nlisten = "127.0.0.1:0"\n'
    )
    return path


async def test_fsync_mode_answers_each_change_after_waitaof(valkey: RedisProcess) -> None:
    """With durability fsync on Valkey 8 a change answers 201, once WAITAOF confirmed it."""
    redis_table = {"url": valkey.url, "durability": "fsync"}
    async with harness(valkey.url, redis=redis_table) as admin:
        before = waitaof_calls(valkey)
        created = await admin.call("POST", "/users", json={"username": "alice"})
        token = await admin.call("POST", "/tokens", json={"user": "alice"})

    assert (created.status, token.status) == (201, 201)
    assert waitaof_calls(valkey) == before + 2


async def test_fsync_mode_is_refused_at_start_by_a_server_without_waitaof(
    private_redis: RedisProcess, tmp_path: Path
) -> None:
    """keystile serve with durability fsync on redis 6.2 exits 1, naming redis.durability."""
    config = write_config(tmp_path / "keystile.toml", private_redis.url, "fsync")

    code, _, err = await processes.run("serve", "--config", str(config))

    assert code == 1
    assert "redis.durability" in err
    assert "WAITAOF" in err
    assert "Traceback" not in err


async def test_replicas_mode_answers_once_the_replica_has_the_change(
    pair: tuple[RedisProcess, RedisProcess],
) -> None:
    """With min_replicas 1 and one replica, a new token answers 201 and the replica holds it."""
    primary, replica = pair
    redis_table = {"url": primary.url, "durability": "replicas", "min_replicas": 1}
    async with harness(primary.url, redis=redis_table) as admin:
        await admin.user("alice")
        token = await admin.token(user="alice")

    on_replica = redis.Redis(port=replica.port)
    try:
        assert on_replica.exists("{ks}:token:" + token["client_id"]) == 1
    finally:
        on_replica.close()


async def test_change_no_replica_confirms_answers_503_and_is_on_the_primary(
    pair: tuple[RedisProcess, RedisProcess],
) -> None:
    """Replica frozen: a change answers 503 not_durable saying it was applied, and it was."""
    primary, replica = pair
    redis_table = {"url": primary.url, "durability": "replicas", "durability_timeout_ms": 200}
    async with harness(primary.url, redis=redis_table) as admin:
        # Frozen, not gone: the primary still counts it connected; only its acknowledgements stop.
        pause(replica)
        reply = await admin.call("POST", "/users", json={"username": "alice"})
        stored = await admin.call("GET", "/users/alice")

    assert reply.status == 503
    assert reply.body["error"] == "not_durable"
    assert "applied on the primary" in reply.body["message"]
    assert "0 of 1 replica" in reply.body["message"]
    assert stored.status == 200
