"""The installed `keystile` command, run as real processes (spec section 5)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.support import CHEAP_HASHING, free_port

KEYSTILE = str(Path(sys.executable).parent / "keystile")


def write_config(path: Path, upstream: str, redis_url: str | None = None) -> dict[str, int]:
    ports = {"proxy": free_port(), "admin": free_port()}
    redis_lines = f'url = "{redis_url}"' if redis_url else f'data_dir = "{path.parent / "data"}"'
    hashing = "\n".join(f"{k} = {v}" for k, v in CHEAP_HASHING.items())
    path.write_text(
        f"""
[proxy]
listen = "127.0.0.1:{ports["proxy"]}"
[admin]
listen = "127.0.0.1:{ports["admin"]}"
[redis]
{redis_lines}
[hashing]
{hashing}
[log]
format = "text"
[[apis]]
name = "orders"
prefix = "/orders"
upstream = "{upstream}"
"""
    )
    return ports


async def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        KEYSTILE, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@asynccontextmanager
async def serving(config: Path, proxy_port: int) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        KEYSTILE, "serve", "--config", str(config),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await _wait_ready(proxy_port, process)
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), 30)


async def _wait_ready(port: int, process: asyncio.subprocess.Process) -> None:
    url = f"http://127.0.0.1:{port}/_keystile/readyz"
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
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


Upstream = Callable[[], Awaitable[str]]


async def orders_upstream() -> TestServer:
    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path, "user": request.headers.get("X-Auth-User")})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


async def bootstrap(config: Path, user: str = "root") -> str:
    code, out, err = await run("bootstrap", "--config", str(config), "--user", user)
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ks_"), out
    return lines[0]


async def admin_post(port: int, path: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/admin/v1{path}"
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http, http.post(url, json=body, headers=headers) as r:
        assert r.status == 201, await r.text()
        result: dict[str, Any] = await r.json()
        return result


async def get(port: int, path: str, token: str | None) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"http://127.0.0.1:{port}{path}"
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as response:
        return response.status, await response.json()


async def test_walking_skeleton_on_the_embedded_store(tmp_path: Path) -> None:
    """A bootstrap token makes a token via the admin API that GETs through, also after restart."""
    upstream = await orders_upstream()
    config = tmp_path / "keystile.toml"
    ports = write_config(config, str(upstream.make_url("")).rstrip("/"))
    try:
        async with serving(config, ports["proxy"]):
            admin_token = await bootstrap(config)  # while serve runs, on its embedded store
            await admin_post(ports["admin"], "/users", admin_token, {"username": "svc"})
            created = await admin_post(
                ports["admin"],
                "/tokens",
                admin_token,
                {"user": "svc", "access": {"orders": "read"}},
            )
            status, body = await get(ports["proxy"], "/orders/42", created["token"])
            assert (status, body) == (200, {"path": "/42", "user": "svc"})
            assert (await get(ports["proxy"], "/orders/42", None))[0] == 401
            assert (await get(ports["proxy"], "/orders/42", admin_token))[0] == 403
        async with serving(config, ports["proxy"]):
            status, body = await get(ports["proxy"], "/orders/7", created["token"])
            assert (status, body["user"]) == (200, "svc")
    finally:
        await upstream.close()


async def test_bootstrap_against_redis_url(tmp_path: Path, redis_url: str) -> None:
    """With redis.url set, bootstrap writes to that server and serve lets the token in."""
    upstream = await orders_upstream()
    config = tmp_path / "keystile.toml"
    ports = write_config(config, str(upstream.make_url("")).rstrip("/"), redis_url)
    try:
        admin_token = await bootstrap(config, "Admin")
        async with serving(config, ports["proxy"]):
            url = f"http://127.0.0.1:{ports['admin']}/admin/v1/me"
            headers = {"Authorization": f"Bearer {admin_token}"}
            async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as r:
                assert r.status == 200
    finally:
        await upstream.close()


async def test_bad_config_names_every_key_without_traceback(tmp_path: Path) -> None:
    """A config with two mistakes stops the start with both keys named and no traceback."""
    config = tmp_path / "bad.toml"
    config.write_text('[proxy]\nlisten = "notaport"\n[tokens]\nprefix = "X"\n')
    code, _, err = await run("serve", "--config", str(config))
    assert code == 2
    assert "proxy.listen: 'notaport' is not host:port" in err
    assert "tokens.prefix:" in err
    assert "Traceback" not in err


async def test_missing_config_file_is_one_clear_line(tmp_path: Path) -> None:
    """A config path that does not exist is one message and a non-zero exit."""
    code, _, err = await run("serve", "--config", str(tmp_path / "nope.toml"))
    assert code == 2
    assert "does not exist" in err and "Traceback" not in err


async def test_unreachable_redis_url_is_one_clear_line(tmp_path: Path) -> None:
    """An unreachable redis.url stops serve and bootstrap with a message naming the key."""
    config = tmp_path / "keystile.toml"
    write_config(config, "http://127.0.0.1:9", f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    for args in (["serve"], ["bootstrap", "--user", "root"]):
        code, _, err = await run(*args, "--config", str(config))
        assert code == 1, err
        assert "redis.url: cannot reach" in err
        assert "hunter2" not in err and "Traceback" not in err


async def test_environment_override_reaches_the_running_process(tmp_path: Path) -> None:
    """KEYSTILE_PROXY_LISTEN set in the environment is the address serve listens on."""
    config = tmp_path / "keystile.toml"
    write_config(config, "http://127.0.0.1:9")
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        KEYSTILE, "serve", "--config", str(config),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "KEYSTILE_PROXY_LISTEN": f"127.0.0.1:{port}"},
    )  # fmt: skip
    try:
        await _wait_ready(port, process)
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 30) == 0
