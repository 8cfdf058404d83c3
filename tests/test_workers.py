"""``keystile serve --workers N`` as real processes: shared ports, one store, clean stop,
no second server on the ports, no orphans after ``kill -9``."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from pathlib import Path

import aiohttp
import pytest

from sidecar.ops import embedded
from tests.kits import processes
from tests.kits.processes import admin_post, bootstrap, run, serving
from tests.kits.redis import CHEAP_HASHING, free_port

pytestmark = pytest.mark.slow


def write_config(directory: Path) -> tuple[Path, dict[str, int]]:
    path = directory / "keystile.toml"
    return path, processes.write_config(path, "http://127.0.0.1:9")


def workers_of(pid: int, command: bytes = b"spawn_main") -> set[int]:
    """Ids of the live worker processes whose parent is ``pid`` (from /proc);
    with ``command``, of the children whose command line holds it."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z" and command in cmdline:
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


def connections_held(pid: int, port: int) -> int:
    """How many established TCP connections to local ``port`` process ``pid`` holds (/proc)."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                inodes.add(fields[9])
    held = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        held += target.startswith("socket:[") and target[8:-1] in inodes
    return held


async def statuses(port: int, token: str, connections: int, *, admin: bool = False) -> list[int]:
    """The forward-auth answer for ``token`` over that many new connections
    (with ``admin``, the admin API's ``/me`` answer)."""
    url = f"http://127.0.0.1:{port}/_keystile/check"
    if admin:
        url = f"http://127.0.0.1:{port}/admin/v1/me"
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


async def test_a_burst_of_connections_is_spread_over_every_worker(tmp_path: Path) -> None:
    """100 connections opened at once land on both workers, neither holding under 30."""
    config, ports = write_config(tmp_path)
    async with serving(config, ports["proxy"], "--workers", "2") as process:
        workers = sorted(workers_of(process.pid))
        opened = await asyncio.gather(
            *(asyncio.open_connection("127.0.0.1", ports["proxy"]) for _ in range(100))
        )
        try:
            deadline = time.monotonic() + 10.0
            while sum(held := [connections_held(w, ports["proxy"]) for w in workers]) < 100:
                assert time.monotonic() < deadline, held
                await asyncio.sleep(0.05)
        finally:
            for _, writer in opened:
                writer.close()

    assert len(workers) == 2
    assert min(held) >= 30, held


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
    from tests.kits.redis import make_config

    automatic = share_of_cores(make_config(), 2 * cores())
    explicit = share_of_cores(make_config(hashing={**CHEAP_HASHING, "threads": 3}), 2)

    assert automatic.hashing.threads == 1
    assert share_of_cores(make_config(), 1).hashing.threads == cores()
    assert explicit.hashing.threads == 3


async def refused(*args: str, stderr: Path) -> tuple[int, str]:
    """Run ``keystile ARGS``, expected to exit by itself soon: exit code and stderr.

    stderr goes to a file, not a pipe: a process that keeps running is killed
    with its children, and no orphan can hold a pipe this test waits on.
    """
    with stderr.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            processes.KEYSTILE, *args, stdout=asyncio.subprocess.DEVNULL, stderr=sink
        )
    try:
        code = await asyncio.wait_for(process.wait(), 20)
    except TimeoutError:
        for pid in workers_of(process.pid) | workers_of(process.pid, b"redis-server"):
            os.kill(pid, signal.SIGKILL)
        process.kill()
        await process.wait()
        raise AssertionError("it started and kept running") from None
    return code, await asyncio.to_thread(stderr.read_text)


def another_store(config: Path, directory: Path, *, moved_port: int | None = None) -> Path:
    """A copy of ``config`` with its own data directory, and ``moved_port`` moved to a free one."""
    directory.mkdir()
    text = config.read_text().replace(str(config.parent / "data"), str(directory / "data"))
    if moved_port is not None:
        text = text.replace(f':{moved_port}"', f':{free_port()}"')
    copy = directory / "keystile.toml"
    copy.write_text(text)
    return copy


async def test_a_second_serve_on_the_ports_exits_and_the_first_keeps_every_request(
    tmp_path: Path,
) -> None:
    """A second serve on taken ports exits 1 naming the key; the first answers every request."""
    config, ports = write_config(tmp_path)
    async with serving(config, ports["proxy"], "--workers", "2"):
        root = await bootstrap(config)
        await admin_post(ports["admin"], "/users", root, {"username": "svc"})
        created = await admin_post(
            ports["admin"], "/tokens", root, {"user": "svc", "access": {"orders": "read"}}
        )
        both = another_store(config, tmp_path / "both")
        admin_only = another_store(config, tmp_path / "admin", moved_port=ports["proxy"])
        cases = [(both, "2", "proxy.listen"), (admin_only, "1", "admin.listen")]

        for second, workers, key in cases:
            code, err = await refused(
                "serve", "--config", str(second), "--workers", workers, stderr=tmp_path / "err"
            )
            assert code == 1, err
            assert err.count(f"{key}: cannot listen") == 1, err
            assert "Traceback" not in err

        assert await statuses(ports["proxy"], created["token"], 50) == [200] * 50
        assert await statuses(ports["admin"], root, 20, admin=True) == [200] * 20


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_kill_9_of_serve_ends_its_workers_and_its_embedded_store(
    tmp_path: Path, workers: str
) -> None:
    """After kill -9 of serve its workers and redis-server end, and the ports and store are free."""
    config, ports = write_config(tmp_path)
    async with serving(config, ports["proxy"], "--workers", workers) as process:
        children = workers_of(process.pid) | workers_of(process.pid, b"redis-server")
        assert len(children) == int(workers) + (workers == "2")
        process.kill()
        try:
            deadline = time.monotonic() + 10.0
            while alive(children):
                assert time.monotonic() < deadline, f"still running: {alive(children)}"
                await asyncio.sleep(0.05)
        finally:
            for pid in alive(children):
                os.kill(pid, signal.SIGKILL)
            # Only now: the children hold serve's stderr pipe, which wait() waits for.
            await process.wait()

    for port in ports.values():
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))
    async with serving(config, ports["proxy"], "--workers", workers):
        pass  # a restart finds the store unlocked and the ports free


async def test_a_store_in_use_names_the_process_that_holds_it(tmp_path: Path) -> None:
    """A serve on a data directory another serve uses exits 1 naming the key and that pid."""
    config, ports = write_config(tmp_path)
    other = tmp_path / "other.toml"
    processes.write_config(other, "http://127.0.0.1:9")  # other ports, the same data_dir
    async with serving(config, ports["proxy"], "--workers", "1") as process:
        code, err = await refused(
            "serve", "--config", str(other), "--workers", "1", stderr=tmp_path / "err"
        )

    assert code == 1
    assert "redis.data_dir" in err
    assert f"process {process.pid} " in err
