"""Running the installed ``keystile`` command as real processes, for the CLI tests."""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from tests.kits.redis import CHEAP_HASHING, free_port

KEYSTILE = str(Path(sys.executable).parent / "keystile")


def write_config(
    path: Path,
    upstream: str,
    redis_url: str | None = None,
    *,
    api: str | None = "orders",
    max_body_bytes: int | None = None,
    data_dir: str | None = None,
    proxy: Mapping[str, float] | None = None,
    admin: Mapping[str, float] | None = None,
) -> dict[str, int]:
    """A config on free ports with one API, ``api`` at ``/api``; embedded store beside ``path``.

    ``max_body_bytes`` sets the proxy's limit; without it the default holds.
    ``data_dir`` is written as given (a relative one, say); ``api`` None: no ``[[apis]]``.
    ``proxy`` and ``admin`` add numeric keys to those tables.
    """
    ports = {"proxy": free_port(), "admin": free_port()}
    data_dir = data_dir or str(path.parent / "data")
    redis_lines = f'url = "{redis_url}"' if redis_url else f'data_dir = "{data_dir}"'
    apis = f'[[apis]]\nname = "{api}"\nprefix = "/{api}"\nupstream = "{upstream}"' if api else ""
    body_line = f"max_body_bytes = {max_body_bytes}" if max_body_bytes is not None else ""
    body_line += "".join(f"\n{key} = {value}" for key, value in (proxy or {}).items())
    admin_lines = "".join(f"\n{key} = {value}" for key, value in (admin or {}).items())
    hashing = "\n".join(f"{k} = {v}" for k, v in CHEAP_HASHING.items())
    path.write_text(
        f"""
[proxy]
listen = "127.0.0.1:{ports["proxy"]}"
{body_line}
[admin]
listen = "127.0.0.1:{ports["admin"]}"{admin_lines}
[redis]
{redis_lines}
[hashing]
{hashing}
[log]
format = "text"
{apis}
"""
    )
    return ports


async def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[int, str, str]:
    """Run ``keystile ARGS`` to completion (in ``cwd``): exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        KEYSTILE, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})}, cwd=cwd,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@asynccontextmanager
async def serving(
    config: Path,
    proxy_port: int,
    *extra: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    tls: ssl.SSLContext | None = None,
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``keystile serve`` (in ``cwd``) until its readyz answers 200 (over https with ``tls``,
    the client's context); terminated on exit."""
    process = await asyncio.create_subprocess_exec(
        KEYSTILE, "serve", "--config", str(config), *extra,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})}, cwd=cwd,
    )  # fmt: skip
    try:
        await wait_ready(proxy_port, lambda: process.returncode, process.stderr, tls)
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), 30)


async def wait_ready(
    port: int,
    exit_code: Callable[[], int | None],
    stderr: asyncio.StreamReader | None = None,
    tls: ssl.SSLContext | None = None,
) -> None:
    """Until the proxy on ``port`` answers its readyz with 200.

    ``exit_code`` is the liveness hook: ``None`` while the process runs, its
    code once it has exited (``Popen.poll``, or an asyncio process's
    ``returncode``). A process that exits first fails the test at once, with
    what it wrote to ``stderr`` when that is a pipe.
    """
    scheme = "https" if tls is not None else "http"
    url = f"{scheme}://127.0.0.1:{port}/_keystile/readyz"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls or True)) as http:
        for _ in range(600):
            if (code := exit_code()) is not None:
                said = (await stderr.read()).decode() if stderr is not None else ""
                raise AssertionError(f"keystile serve exited with {code} before ready: {said}")
            try:
                async with http.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("keystile serve did not become ready")


async def bootstrap(config: Path, user: str = "root") -> str:
    """The admin token ``keystile bootstrap`` prints, checked to be alone on its line."""
    code, out, err = await run("bootstrap", "--config", str(config), "--user", user)
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 1, out
    assert lines[0].startswith("ks_"), out
    return lines[0]


async def admin_post(port: int, path: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST to the admin API; asserts a 200 or 201 and answers the JSON body."""
    url = f"http://127.0.0.1:{port}/admin/v1{path}"
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http, http.post(url, json=body, headers=headers) as r:
        assert r.status in (200, 201), await r.text()
        result: dict[str, Any] = await r.json()
        return result
