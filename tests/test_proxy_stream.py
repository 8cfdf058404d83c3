"""64 MiB up and down through ``keystile serve`` (a real process) with flat memory.

The proxy runs as ``python -m admin.cli serve`` so its memory is its own; its
peak RSS (``VmHWM``, reset after warm-up through ``/proc/PID/clear_refs``) must
stay far below the size of the bodies that went through it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from sidecar.store import RedisStore
from tests.proxykit import CHUNK, Upstream
from tests.support import free_port, make_config, seed_token

MIB = 1024 * 1024
BODY = 64 * MIB
#: Peak growth allowed while 2 x 64 MiB stream through: buffers, not bodies.
FLAT = 16 * MIB


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        for child in children:
            pids.extend(tree(int(child)))
    return pids


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} missing")


def reset_peaks(pids: list[int]) -> None:
    """Set each process's VmHWM back to its VmRSS (proc(5), clear_refs value 5)."""
    for pid in pids:
        Path(f"/proc/{pid}/clear_refs").write_text("5")


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    started = Upstream()
    await started.start()
    yield started
    await started.stop()


@pytest.fixture
def serve(redis_url: str, upstream: Upstream, tmp_path: Path) -> Iterator[tuple[str, int, int]]:
    """``keystile serve`` with one worker in front of the upstream: (url, pid, admin port)."""
    port = free_port()
    admin_port = free_port()
    conf = tmp_path / "keystile.toml"
    conf.write_text(
        f"""
[proxy]
listen = "127.0.0.1:{port}"
max_body_bytes = {2 * BODY}
[admin]
listen = "127.0.0.1:{admin_port}"
[redis]
url = "{redis_url}"
[hashing]
memory_kib = 8
time_cost = 1
parallelism = 1
[log]
level = "warning"
[[apis]]
name = "files"
prefix = "/files"
upstream = "{upstream.url}/f"
"""
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "admin.cli", "serve", "--config", str(conf), "--workers", "1"],
        stdout=subprocess.DEVNULL,
    )
    yield f"http://127.0.0.1:{port}", process.pid, admin_port
    process.terminate()
    process.wait(15)


async def wait_ready(http: aiohttp.ClientSession, url: str) -> None:
    for _ in range(400):
        try:
            async with http.get(f"{url}/_keystile/readyz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("keystile serve did not become ready")


async def upload_body() -> AsyncIterator[bytes]:
    for _ in range(BODY // len(CHUNK)):
        yield CHUNK


@pytest.mark.slow
async def test_64_mib_up_and_down_with_flat_memory(
    serve: tuple[str, int, int], upstream: Upstream, store: RedisStore
) -> None:
    """A 64 MiB upload and a 64 MiB download stream through; the proxy's peak RSS stays flat."""
    url, pid, _ = serve
    issued = await seed_token(store, make_config(), access={"files": "full"})
    auth = {"Authorization": f"Bearer {issued.bearer}"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        await wait_ready(http, url)
        async with http.get(f"{url}/files/warm", headers=auth) as response:
            assert response.status == 200
        pids = tree(pid)
        baseline = {p: status_kib(p, "VmRSS") for p in pids}
        reset_peaks(pids)
        async with http.post(f"{url}/files/up", headers=auth, data=upload_body()) as response:
            assert response.status == 200
            assert (await response.json())["length"] == BODY
        received = 0
        async with http.get(f"{url}/files/download?bytes={BODY}", headers=auth) as response:
            assert response.status == 200
            async for chunk in response.content.iter_any():
                received += len(chunk)
        growth_kib = max(status_kib(p, "VmHWM") - baseline[p] for p in pids)
    assert received == BODY
    assert upstream.seen[-2].body_length == BODY
    assert growth_kib * 1024 < FLAT, f"peak RSS grew by {growth_kib} KiB"


async def unparseable(port: int) -> bytes:
    """Send a request whose Authorization line carries a control byte; the whole answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /files/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ks_SECRET\x01\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return answer


@pytest.mark.slow
async def test_serve_answers_unparseable_requests_without_echo(
    serve: tuple[str, int, int],
) -> None:
    """``keystile serve``'s proxy and admin listeners never echo a bad header line back."""
    url, _, admin_port = serve
    async with aiohttp.ClientSession() as http:
        await wait_ready(http, url)
    proxy_port = int(url.rsplit(":", 1)[1])
    for port in (proxy_port, admin_port):
        answer = await unparseable(port)
        assert answer.startswith(b"HTTP/1.0 400 ")
        assert answer.endswith(
            b'{"error": "invalid_request", "message": "the request could not be parsed"}'
        )
        assert b"SECRET" not in answer
