"""The installed `keystile` command, run as real processes (spec section 5)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.kits.processes import (
    admin_post,
    bootstrap,
    run,
    serving,
    write_config,
)
from tests.kits.redis import free_port


async def orders_upstream() -> TestServer:
    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path, "user": request.headers.get("X-Auth-User")})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


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
    listen = {"KEYSTILE_PROXY_LISTEN": f"127.0.0.1:{port}"}
    async with serving(config, port, env=listen) as process:
        pass
    assert process.returncode == 0


async def test_bootstrap_from_another_directory_writes_to_the_store_serve_uses(
    tmp_path: Path,
) -> None:
    """A relative data_dir is beside the config file: a bootstrap run elsewhere works on serve."""
    etc, serve_cwd, boot_cwd = (tmp_path / name for name in ("etc", "srv", "home"))
    for directory in (etc, serve_cwd, boot_cwd):
        directory.mkdir()
    config = etc / "keystile.toml"
    ports = write_config(config, "http://127.0.0.1:9", data_dir="./data")
    async with serving(config, ports["proxy"], cwd=serve_cwd):
        code, out, err = await run(
            "bootstrap", "--config", str(config), "--user", "root", cwd=boot_cwd
        )
        assert code == 0, err
        status, _ = await get(ports["admin"], "/admin/v1/me", out.strip())

    assert status == 200
    assert f"in the embedded store in {etc / 'data'}" in err
    assert not (serve_cwd / "data").exists() and not (boot_cwd / "data").exists()


async def test_bootstrap_names_the_redis_url_it_wrote_to(tmp_path: Path, redis_url: str) -> None:
    """With redis.url set, bootstrap's stderr says the token went to that server."""
    config = tmp_path / "keystile.toml"
    write_config(config, "http://127.0.0.1:9", redis_url)

    code, _, err = await run("bootstrap", "--config", str(config), "--user", "root")

    assert code == 0, err
    assert f"for root in {redis_url}" in err


async def test_a_misspelt_environment_variable_stops_the_start_naming_it(tmp_path: Path) -> None:
    """KEYSTILE_PROXY_LISTN is an error that names it and the variable it resembles."""
    config = tmp_path / "keystile.toml"
    write_config(config, "http://127.0.0.1:9")

    code, _, err = await run(
        "serve", "--config", str(config), env={"KEYSTILE_PROXY_LISTN": "127.0.0.1:1"}
    )

    assert code == 2
    assert "KEYSTILE_PROXY_LISTN: unknown environment variable" in err
    assert "did you mean KEYSTILE_PROXY_LISTEN?" in err


async def test_a_config_without_apis_starts_with_a_warning(tmp_path: Path) -> None:
    """serve with no [[apis]] runs, and its log says the proxy has nothing to forward to."""
    config = tmp_path / "keystile.toml"
    ports = write_config(config, "http://127.0.0.1:9", api=None)

    async with serving(config, ports["proxy"]) as process:
        assert process.stderr is not None
        first = (await asyncio.wait_for(process.stderr.readline(), 10)).decode()

    assert "warning" in first.lower()
    assert "no [[apis]] in the config" in first
