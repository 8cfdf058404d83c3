"""``keystile serve --workers N`` as real processes: shared ports, one store, clean stop."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sidecar import embedded
from tests.support import CHEAP_HASHING, free_port

KEYSTILE = str(Path(sys.executable).parent / "keystile")
pytestmark = pytest.mark.slow


def write_config(directory: Path) -> tuple[Path, dict[str, int]]:
    ports = {"proxy": free_port(), "admin": free_port()}
    hashing = "\n".join(f"{k} = {v}" for k, v in CHEAP_HASHING.items())
    path = directory / "keystile.toml"
    path.write_text(
        f"""
[proxy]
listen = "127.0.0.1:{ports["proxy"]}"
[admin]
listen = "127.0.0.1:{ports["admin"]}"
[redis]
data_dir = "{directory / "data"}"
[hashing]
{hashing}
[log]
format = "text"
[[apis]]
name = "orders"
prefix = "/orders"
upstream = "http://127.0.0.1:9"
"""
    )
    return path, ports


def workers_of(pid: int) -> set[int]:
    """Ids of the live worker processes whose parent is ``pid`` (from /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z" and b"spawn_main" in command:
            found.add(int(stat.parent.name))
    return found


def alive(pids: set[int]) -> set[int]:
    """Those of ``pids`` that still run (not gone, not a zombie)."""
    running = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            running.add(pid)
    return running


@asynccontextmanager
async def serving(
    config: Path, port: int, workers: int
) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        KEYSTILE, "serve", "--config", str(config), "--workers", str(workers),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await _wait_ready(port, process)
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), 30)


async def _wait_ready(port: int, process: asyncio.subprocess.Process) -> None:
    url = f"http://127.0.0.1:{port}/_keystile/readyz"
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            if process.returncode is not None:
                assert process.stderr is not None
                raise AssertionError((await process.stderr.read()).decode())
            try:
                async with http.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("keystile serve did not become ready")


async def bootstrap(config: Path) -> str:
    process = await asyncio.create_subprocess_exec(
        KEYSTILE, "bootstrap", "--config", str(config), "--user", "root",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out.decode().strip()


async def admin(port: int, path: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/admin/v1{path}"
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http, http.post(url, json=body, headers=headers) as r:
        assert r.status in (200, 201), await r.text()
        result: dict[str, Any] = await r.json()
        return result


async def statuses(port: int, token: str, connections: int) -> list[int]:
    """The forward-auth answer for ``token`` over that many new connections."""
    url = f"http://127.0.0.1:{port}/_keystile/check"
    headers = {"Authorization": f"Bearer {token}", "X-Original-URI": "/orders/1"}
    answers = []
    for _ in range(connections):
        connector = aiohttp.TCPConnector(force_close=True)
        async with (
            aiohttp.ClientSession(connector=connector) as http,
            http.get(url, headers=headers) as response,
        ):
            answers.append(response.status)
    return answers


async def test_workers_share_ports_and_a_revoke_reaches_them_all(tmp_path: Path) -> None:
    """Two workers answer on one port; a token revoked through the admin API stops on both."""
    config, ports = write_config(tmp_path)
    async with serving(config, ports["proxy"], workers=2) as process:
        assert len(workers_of(process.pid)) == 2
        root = await bootstrap(config)
        await admin(ports["admin"], "/users", root, {"username": "svc"})
        created = await admin(
            ports["admin"], "/tokens", root, {"user": "svc", "access": {"orders": "read"}}
        )
        assert await statuses(ports["proxy"], created["token"], 12) == [200] * 12

        await admin(ports["admin"], f"/tokens/{created['client_id']}/revoke", root, {})

        deadline = time.monotonic() + 2.0  # the event takes milliseconds; CI machines vary
        while (answers := await statuses(ports["proxy"], created["token"], 12)) != [401] * 12:
            assert time.monotonic() < deadline, answers
            await asyncio.sleep(0.01)


async def test_sigterm_stops_every_worker_then_the_embedded_store(tmp_path: Path) -> None:
    """SIGTERM to serve ends its workers and its embedded Redis, and exits 0."""
    config, ports = write_config(tmp_path)
    async with serving(config, ports["proxy"], workers=2) as process:
        workers = workers_of(process.pid)

        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 30)

    assert code == 0
    assert len(workers) == 2
    assert alive(workers) == set()
    assert not embedded.is_running(tmp_path / "data")


async def test_port_in_use_stops_every_worker_with_the_key_named(tmp_path: Path) -> None:
    """A proxy port held by another program ends serve with exit 1 and the key in the message."""
    config, ports = write_config(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ports["proxy"]))
        taken.listen()
        process = await asyncio.create_subprocess_exec(
            KEYSTILE, "serve", "--config", str(config), "--workers", "2",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(process.communicate(), 60)

    assert process.returncode == 1
    assert "proxy.listen: cannot listen" in err.decode()
    assert "Traceback" not in err.decode()
    assert not embedded.is_running(tmp_path / "data")


def test_workers_split_the_cores_between_their_argon2_pools() -> None:
    """With hashing.threads = 0, N workers run at most one argon2 per core between them."""
    from admin.workers import share_of_cores
    from sidecar.hashing import cores
    from tests.support import make_config

    automatic = share_of_cores(make_config(), 2 * cores())
    explicit = share_of_cores(make_config(hashing={**CHEAP_HASHING, "threads": 3}), 2)

    assert automatic.hashing.threads == 1
    assert share_of_cores(make_config(), 1).hashing.threads == cores()
    assert explicit.hashing.threads == 3
