"""The server's persistence and eviction, checked at start against real servers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from sidecar.store import serverchecks
from tests.kits import processes
from tests.kits.redis import RedisProcess, free_port, make_config
from tests.kits.servers import valkey_binary

PERSISTENT = ("--appendonly", "yes")


@pytest.fixture
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RedisProcess]:
    """A redis-server started with the settings the test is parametrized with."""
    process = RedisProcess(tmp_path / "redis", *request.param)
    process.start()
    yield process
    process.stop()


@pytest.fixture
async def client(server: RedisProcess) -> AsyncIterator[aioredis.Redis]:
    connection = aioredis.Redis.from_url(server.url, decode_responses=True)
    yield connection
    await connection.aclose()


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


@pytest.mark.parametrize("server", [()], indirect=True)
async def test_no_persistence_is_a_warning_naming_the_settings(
    client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """appendonly no with an empty save: a warning that names both settings."""
    await serverchecks.check(client, make_config().redis, "the test server")

    assert any("appendonly" in w and "save" in w for w in warnings(caplog))


@pytest.mark.parametrize(
    "server", [(*PERSISTENT, "--maxmemory-policy", "allkeys-lru")], indirect=True
)
async def test_evicting_policy_is_a_warning_and_volatile_ones_are_not(
    client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """allkeys-lru may evict a token: a warning naming it; volatile-lru evicts none of ours."""
    await serverchecks.check(client, make_config().redis, "the test server")
    evicting = warnings(caplog)
    caplog.clear()
    await client.config_set("maxmemory-policy", "volatile-lru")
    await serverchecks.check(client, make_config().redis, "the test server")

    assert any("maxmemory-policy" in w and "allkeys-lru" in w for w in evicting)
    assert warnings(caplog) == []


@pytest.mark.parametrize(
    "server",
    [("--rename-command", "CONFIG", "", "--maxmemory-policy", "allkeys-lfu")],
    indirect=True,
)
async def test_a_server_refusing_config_is_read_through_info(
    client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """Without CONFIG the policy comes from INFO; save cannot: a warning, a refusal if required."""
    await serverchecks.check(client, make_config().redis, "the test server")
    required = make_config(redis={"require_persistence": True}).redis
    with pytest.raises(serverchecks.ServerRefused) as refused:
        await serverchecks.check(client, required, "the test server")

    said = warnings(caplog)
    assert any("allkeys-lfu" in w for w in said)
    assert any("could not check" in w and "save" in w for w in said)
    assert "save could not be read" in str(refused.value)


@pytest.mark.parametrize("server", [("--maxmemory-policy", "allkeys-random")], indirect=True)
async def test_require_persistence_refuses_to_start(server: RedisProcess, tmp_path: Path) -> None:
    """With redis.require_persistence, keystile serve exits 1 naming the key and each setting."""
    config = tmp_path / "keystile.toml"
    config.write_text(
        f'[proxy]\nlisten = "127.0.0.1:{free_port()}"\n'
        f'[admin]\nlisten = "127.0.0.1:{free_port()}"\n'
        f'[redis]\nurl = "{server.url}"\nrequire_persistence = true\n'
    )

    code, _, err = await processes.run("serve", "--config", str(config))

    assert code == 1
    assert "redis.require_persistence" in err
    assert "appendonly" in err and "allkeys-random" in err
    assert "Traceback" not in err


async def test_fsync_mode_needs_appendonly(tmp_path: Path) -> None:
    """fsync durability on a Valkey 8 without its append-only file is refused, naming the key."""
    valkey = RedisProcess(tmp_path / "valkey", binary=valkey_binary())  # appendonly no
    valkey.start()
    client = aioredis.Redis.from_url(valkey.url, decode_responses=True)
    fsync = make_config(redis={"url": valkey.url, "durability": "fsync"}).redis
    try:
        with pytest.raises(serverchecks.ServerRefused) as refused:
            await serverchecks.check(client, fsync, "the test server")
    finally:
        await client.aclose()
        valkey.stop()

    assert "redis.durability" in str(refused.value)
    assert "appendonly yes" in str(refused.value)
