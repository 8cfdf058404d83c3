"""64 MiB up and down through ``keystile serve`` (a real process) with flat memory.

The proxy runs as ``python -m admin.cli serve`` so its memory is its own; its
peak RSS (``VmHWM``, reset after warm-up through ``/proc/PID/clear_refs``) must
stay far below the size of the bodies that went through it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from sidecar.store.management import AdminStore
from tests.kits.processes import wait_ready, write_config
from tests.kits.proxy import CHUNK, Upstream, raw_exchange
from tests.kits.redis import make_config, seed_token

MIB = 1024 * 1024
BODY = 64 * MIB
#: Peak growth allowed while 2 x 64 MiB stream through: buffers, not bodies.
FLAT = 16 * MIB
#: A request whose Authorization line carries a control byte.
UNPARSEABLE = b"GET /files/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ks_SECRET\x01\r\n\r\n"


@dataclass
class Serve:
    """A running ``keystile serve`` and the ports of its two listeners."""

    process: subprocess.Popen[bytes]
    proxy_port: int
    admin_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    async def ready(self) -> None:
        await wait_ready(self.proxy_port, self.process.poll)


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
def serve(redis_url: str, upstream: Upstream, tmp_path: Path) -> Iterator[Serve]:
    """``keystile serve`` with one worker in front of the upstream."""
    conf = tmp_path / "keystile.toml"
    ports = write_config(conf, f"{upstream.url}/f", redis_url, api="files", max_body_bytes=2 * BODY)
    process = subprocess.Popen(
        [sys.executable, "-m", "admin.cli", "serve", "--config", str(conf), "--workers", "1"],
        stdout=subprocess.DEVNULL,
    )
    yield Serve(process, ports["proxy"], ports["admin"])
    process.terminate()
    process.wait(15)


async def upload_body() -> AsyncIterator[bytes]:
    for _ in range(BODY // len(CHUNK)):
        yield CHUNK


@pytest.mark.slow
async def test_64_mib_up_and_down_with_flat_memory(
    serve: Serve, upstream: Upstream, store: AdminStore
) -> None:
    """A 64 MiB upload and a 64 MiB download stream through; the proxy's peak RSS stays flat."""
    url = serve.url
    issued = await seed_token(store, make_config(), access={"files": "full"})
    auth = {"Authorization": f"Bearer {issued.bearer}"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        await serve.ready()
        async with http.get(f"{url}/files/warm", headers=auth) as response:
            assert response.status == 200
        pids = tree(serve.process.pid)
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


@pytest.mark.slow
async def test_serve_answers_unparseable_requests_without_echo(
    serve: Serve,
) -> None:
    """``keystile serve``'s proxy and admin listeners never echo a bad header line back."""
    await serve.ready()
    for port in (serve.proxy_port, serve.admin_port):
        answer = await raw_exchange(port, UNPARSEABLE, wait=5, must_close=True)
        assert answer.startswith(b"HTTP/1.0 400 ")
        assert answer.endswith(
            b'{"error": "invalid_request", "message": "the request could not be parsed"}'
        )
        assert b"SECRET" not in answer
