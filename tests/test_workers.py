"""``keystile serve --workers N`` as real processes: shared ports, one store, clean stop."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from pathlib import Path

import aiohttp
import pytest

from sidecar.ops import embedded
from tests import processkit
from tests.processkit import admin_post, bootstrap, run, serving
from tests.support import CHEAP_HASHING

pytestmark = pytest.mark.slow


def write_config(directory: Path) -> tuple[Path, dict[str, int]]:
    path = directory / "keystile.toml"
    return path, processkit.write_config(path, "http://127.0.0.1:9")


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
    async with serving(config, ports["proxy"], "--workers", "2") as process:
        assert len(workers_of(process.pid)) == 2
        root = await bootstrap(config)
        await admin_post(ports["admin"], "/users", root, {"username": "svc"})
        created = await admin_post(
            ports["admin"], "/tokens", root, {"user": "svc", "access": {"orders": "read"}}
        )
        assert await statuses(ports["proxy"], created["token"], 12) == [200] * 12

        await admin_post(ports["admin"], f"/tokens/{created['client_id']}/revoke", root, {})

        deadline = time.monotonic() + 2.0  # the event takes milliseconds; CI machines vary
        while (answers := await statuses(ports["proxy"], created["token"], 12)) != [401] * 12:
            assert time.monotonic() < deadline, answers
            await asyncio.sleep(0.01)


async def test_sigterm_stops_every_worker_then_the_embedded_store(tmp_path: Path) -> None:
    """SIGTERM to serve ends its workers and its embedded Redis, and exits 0."""
    config, ports = write_config(tmp_path)
    async with serving(config, ports["proxy"], "--workers", "2") as process:
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
        code, _, err = await run("serve", "--config", str(config), "--workers", "2")

    assert code == 1
    assert "proxy.listen: cannot listen" in err
    assert "Traceback" not in err
    assert not embedded.is_running(tmp_path / "data")


def test_workers_split_the_cores_between_their_argon2_pools() -> None:
    """With hashing.threads = 0, N workers run at most one argon2 per core between them."""
    from admin.workers import share_of_cores
    from sidecar.verification.hashing import cores
    from tests.support import make_config

    automatic = share_of_cores(make_config(), 2 * cores())
    explicit = share_of_cores(make_config(hashing={**CHEAP_HASHING, "threads": 3}), 2)

    assert automatic.hashing.threads == 1
    assert share_of_cores(make_config(), 1).hashing.threads == cores()
    assert explicit.hashing.threads == 3
