"""Crash consistency: SIGKILL of redis-server or of Keystile in the middle of admin changes.

A loop creates tokens through the admin API of a real ``keystile serve`` and
regenerates, revokes or deletes most of them, remembering each change it saw
acknowledged (a 2xx answer). Then one process is killed without warning,
restarted, and every acknowledged change must be there, as the proxy sees it,
with ``keystile store check`` clean. The one change in flight at the kill may
have landed or not, but whole or not at all.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.kits.processes import KEYSTILE, bootstrap, run, wait_ready, write_config
from tests.kits.redis import RedisProcess

pytestmark = pytest.mark.slow

#: Acknowledged changes before the kill: enough of each kind, few enough to stay quick.
BEFORE_KILL = 16


@dataclass
class Ledger:
    """What the loop saw acknowledged: each token's latest bearer and its fate."""

    bearers: dict[str, str] = field(default_factory=dict)
    fate: dict[str, str] = field(default_factory=dict)  # "active", "revoked" or "deleted"
    acknowledged: int = 0
    #: Set once BEFORE_KILL changes are acknowledged.
    enough: asyncio.Event = field(default_factory=asyncio.Event)
    #: The token whose change was in flight when the loop stopped: either outcome is fine.
    in_flight: str | None = None


class Admin:
    def __init__(self, http: aiohttp.ClientSession, port: int, token: str) -> None:
        self.http, self.base = http, f"http://127.0.0.1:{port}/admin/v1"
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, body: object = None) -> dict[str, object]:
        async with self.http.request(
            method, self.base + path, json=body, headers=self.headers
        ) as response:
            if response.status >= 300:
                raise ConnectionError(f"{method} {path}: {response.status}")
            return await response.json() if response.status != 204 else {}


async def churn(admin: Admin, ledger: Ledger) -> None:
    """Create, then regenerate, revoke or delete, until a change is not acknowledged."""
    for n in range(10_000):
        ledger.in_flight = None
        created = await admin.call("POST", "/tokens", {"user": "svc", "access": {"orders": "read"}})
        client_id = str(created["client_id"])
        ledger.bearers[client_id], ledger.fate[client_id] = str(created["token"]), "active"
        ledger.acknowledged += 1
        ledger.in_flight = client_id
        if n % 4 == 1:
            regenerated = await admin.call("POST", f"/tokens/{client_id}/regenerate", {})
            ledger.bearers[client_id] = str(regenerated["token"])
        elif n % 4 == 2:
            await admin.call("POST", f"/tokens/{client_id}/revoke", {})
            ledger.fate[client_id] = "revoked"
        elif n % 4 == 3:
            await admin.call("DELETE", f"/tokens/{client_id}")
            ledger.fate[client_id] = "deleted"
        ledger.acknowledged += n % 4 != 0
        if ledger.acknowledged >= BEFORE_KILL:
            ledger.enough.set()


async def run_until_killed(admin: Admin, kill: Callable[[], Awaitable[None]]) -> Ledger:
    """Churn until BEFORE_KILL changes are acknowledged, kill, and let the loop fail."""
    ledger = Ledger()
    loop = asyncio.ensure_future(churn(admin, ledger))
    await asyncio.wait(
        [loop, asyncio.ensure_future(ledger.enough.wait())],
        timeout=30,
        return_when=asyncio.FIRST_COMPLETED,
    )
    assert not loop.done(), "the loop stopped before the kill"
    await kill()
    with pytest.raises((ConnectionError, aiohttp.ClientError)):
        await asyncio.wait_for(loop, 30)
    return ledger


async def assert_every_acknowledged_change_holds(
    ledger: Ledger, ports: dict[str, int], admin_token: str
) -> None:
    """Each token is as acknowledged, on the proxy (latest secret) and in the admin API."""
    async with aiohttp.ClientSession() as http:
        admin = Admin(http, ports["admin"], admin_token)
        for client_id, bearer in ledger.bearers.items():
            if client_id == ledger.in_flight:
                continue
            fate = ledger.fate[client_id]
            url = f"http://127.0.0.1:{ports['proxy']}/orders/1"
            async with http.get(url, headers={"Authorization": f"Bearer {bearer}"}) as response:
                assert (response.status == 200) == (fate == "active"), (client_id, fate)
            if fate == "deleted":
                history = await admin.call("GET", f"/tokens/{client_id}/history")
                assert [e["action"] for e in history["items"]][-1] == "deleted"  # type: ignore[index]
            else:
                assert (await admin.call("GET", f"/tokens/{client_id}"))["status"] == fate


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    async def ok(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/{tail:.*}", ok)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
async def durable_redis(tmp_path: Path) -> AsyncIterator[RedisProcess]:
    server = RedisProcess(tmp_path / "redis", durable=True)
    server.start()
    yield server
    server.stop()


async def start_serve(config: Path, ports: dict[str, int]) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        KEYSTILE, "serve", "--config", str(config), "--workers", "1",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await wait_ready(ports["proxy"], lambda: process.returncode)
    return process


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)


async def assert_store_check_is_clean(config: Path) -> None:
    code, out, err = await run("store", "check", "--config", str(config))
    assert code == 0, out + err


async def test_acknowledged_changes_survive_a_sigkill_of_redis(
    tmp_path: Path, upstream: str, durable_redis: RedisProcess
) -> None:
    """kill -9 of redis-server (AOF, fsync always) mid-loop loses no acknowledged change."""
    config = tmp_path / "keystile.toml"
    ports = write_config(config, upstream, durable_redis.url)
    admin_token = await bootstrap(config)
    serve = await start_serve(config, ports)
    try:
        async with aiohttp.ClientSession() as http:
            admin = Admin(http, ports["admin"], admin_token)
            await admin.call("POST", "/users", {"username": "svc"})

            async def kill() -> None:
                durable_redis.kill()

            ledger = await run_until_killed(admin, kill)
        durable_redis.start()
        await wait_ready(ports["proxy"], lambda: serve.returncode)
        await assert_every_acknowledged_change_holds(ledger, ports, admin_token)
    finally:
        await stop(serve)
    await assert_store_check_is_clean(config)


async def test_acknowledged_changes_survive_a_sigkill_of_keystile(
    tmp_path: Path, upstream: str, durable_redis: RedisProcess
) -> None:
    """kill -9 of keystile serve mid-loop leaves no half-written change; a restart sees them all."""
    config = tmp_path / "keystile.toml"
    ports = write_config(config, upstream, durable_redis.url)
    admin_token = await bootstrap(config)
    serve = await start_serve(config, ports)
    async with aiohttp.ClientSession() as http:
        admin = Admin(http, ports["admin"], admin_token)
        await admin.call("POST", "/users", {"username": "svc"})

        async def kill() -> None:
            serve.kill()
            await serve.wait()

        ledger = await run_until_killed(admin, kill)
    serve = await start_serve(config, ports)
    try:
        await assert_every_acknowledged_change_holds(ledger, ports, admin_token)
    finally:
        await stop(serve)
    await assert_store_check_is_clean(config)
