"""Store URLs in logs and messages: no credential survives ``redact``, in the pure
function and in what ``keystile serve`` prints."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from sidecar.redaction import UNREADABLE, redact
from tests.kits.processes import KEYSTILE, run, wait_ready, write_config
from tests.kits.redis import RedisProcess, free_port


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@h:6379/0", "redis://***@h:6379/0"),
        ("redis://app:s3cret@h:6379/0", "redis://***@h:6379/0"),
        ("redis://s3cret@h:6379/0", "redis://***@h:6379/0"),
        ("redis://h:6379/0?password=s3cret", "redis://h:6379/0?password=***"),
        ("redis://h/0?db=1&username=app&password=s3cret", "redis://h/0?db=1&username=***&password=***"),
        ("redis://h/0?pass%77ord=s3cret", "redis://h/0?pass%77ord=***"),
        ("redis://h/0?sentinel_password=s3cret&socket_timeout=2", "redis://h/0?sentinel_password=***&socket_timeout=2"),
        ("rediss://h:6380/0#s3cret", "rediss://h:6380/0"),
        ("unix://:s3cret@/run/redis.sock?db=2", "unix://***@/run/redis.sock?db=2"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ],
)  # fmt: skip
def test_redact_hides_every_credential_and_keeps_the_address(url: str, shown: str) -> None:
    """Userinfo, credential-like query values and fragments go; host, port, db and options stay."""
    assert redact(url) == shown


@pytest.mark.parametrize("url", ["redis://app:s3cret/0", "redis://[::1:s3cret/0"])
def test_a_url_that_cannot_be_parsed_is_not_echoed(url: str) -> None:
    """A URL urllib cannot take apart (a password where the port goes) is shown as a placeholder."""
    assert redact(url) == UNREADABLE


async def test_failed_start_never_prints_a_query_password(tmp_path: Path) -> None:
    """An unreachable redis.url with ?password= stops serve naming the key, never the password."""
    config = tmp_path / "keystile.toml"
    write_config(config, "http://127.0.0.1:9", f"redis://127.0.0.1:{free_port()}/0?password=s3cret")

    code, out, err = await run("serve", "--config", str(config), "--workers", "1")

    assert code == 1, err
    assert "redis.url: cannot reach redis://127.0.0.1:" in err
    assert "s3cret" not in out + err


async def test_using_redis_line_never_shows_a_query_password(
    private_redis: RedisProcess, tmp_path: Path
) -> None:
    """A store that wants a password given as ?password=: the "using redis" line hides it."""
    client = aioredis.Redis(port=private_redis.port)
    await client.config_set("requirepass", "s3cret")
    await client.aclose()
    config = tmp_path / "keystile.toml"
    ports = write_config(config, "http://127.0.0.1:9", f"{private_redis.url}?password=s3cret")
    process = await asyncio.create_subprocess_exec(
        KEYSTILE, "serve", "--config", str(config), "--workers", "1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await wait_ready(ports["proxy"], lambda: process.returncode, process.stderr)
    finally:
        process.terminate()
        out, err = await asyncio.wait_for(process.communicate(), 30)
    logged = (out + err).decode()

    assert "using redis" in logged and "password=***" in logged
    assert "s3cret" not in logged
