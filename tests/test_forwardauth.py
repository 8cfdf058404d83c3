"""Forward-auth mode (``/_keystile/check``): direct calls, and through a real nginx
with ``auth_request``."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.proxykit import Env
from tests.support import free_port


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def asking(method: str, uri: str, style: str = "nginx") -> dict[str, str]:
    if style == "traefik":
        return {"X-Forwarded-Method": method, "X-Forwarded-Uri": uri}
    return {"X-Original-Method": method, "X-Original-URI": uri}


@pytest.mark.parametrize("style", ["nginx", "traefik"])
async def test_check_allows_with_identity_headers(
    env: Env, http: aiohttp.ClientSession, style: str
) -> None:
    """A valid credential for the original method and URI: 200 with the identity headers."""
    headers = {**env.bearer(), **asking("POST", "/orders/42?x=1", style)}
    async with http.get(f"{env.url}/_keystile/check", headers=headers) as response:
        assert response.status == 200
        assert response.headers["X-Auth-User"] == "alice"
        assert response.headers["X-Auth-Client-Id"] == env.tokens.full_id
        assert response.headers["X-Auth-Access"] == "full"
    assert env.upstream.seen == []


async def test_check_envoy_style_reads_method_and_path_from_the_request(
    env: Env, http: aiohttp.ClientSession
) -> None:
    """Envoy's ext_authz appends the original path and keeps the method."""
    headers = env.bearer(env.tokens.read_orders)
    async with http.get(f"{env.url}/_keystile/check/orders/1", headers=headers) as response:
        assert response.status == 200
        assert response.headers["X-Auth-Access"] == "read"
    async with http.delete(f"{env.url}/_keystile/check/orders/1", headers=headers) as response:
        assert response.status == 403


async def test_check_refusals_match_the_proxy(env: Env, http: aiohttp.ClientSession) -> None:
    """No credential 401 with challenge; level too low 403; URI of no API 403."""
    async with http.get(f"{env.url}/_keystile/check", headers=asking("GET", "/orders/1")) as r:
        assert r.status == 401
        assert r.headers["WWW-Authenticate"] == 'Bearer realm="keystile"'
    read = env.bearer(env.tokens.read_orders)
    async with http.get(
        f"{env.url}/_keystile/check", headers={**read, **asking("PUT", "/orders/1")}
    ) as r:
        assert r.status == 403
        assert (await r.json())["error"] == "insufficient_scope"
    for uri in ("/nowhere", "/orders/../billing/x"):
        async with http.get(
            f"{env.url}/_keystile/check", headers={**env.bearer(), **asking("GET", uri)}
        ) as r:
            assert r.status == 403


async def test_check_without_original_uri_is_400(env: Env, http: aiohttp.ClientSession) -> None:
    """A check that does not say which request it is about is a 400."""
    async with http.get(f"{env.url}/_keystile/check", headers=env.bearer()) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_request"


# -- through nginx auth_request ---------------------------------------------------------

NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location /orders/ {{
            auth_request /_keystile_check;
            auth_request_set $ks_user $upstream_http_x_auth_user;
            auth_request_set $ks_access $upstream_http_x_auth_access;
            proxy_set_header X-Auth-User $ks_user;
            proxy_set_header X-Auth-Access $ks_access;
            proxy_set_header Authorization "";
            proxy_pass http://127.0.0.1:{upstream}/o/;
        }}
        location = /_keystile_check {{
            internal;
            proxy_pass http://127.0.0.1:{keystile}/_keystile/check;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Original-Method $request_method;
        }}
    }}
}}
"""


@pytest.fixture
def nginx_binary() -> str:
    binary = shutil.which("nginx") or shutil.which("/usr/sbin/nginx")
    if binary is None:
        pytest.skip("nginx is not installed (.ci/run installs it from Debian's nginx-light)")
    return binary


@pytest.fixture
def nginx(nginx_binary: str, env: Env, tmp_path: Path) -> Iterator[str]:
    """A private nginx on a free port: auth_request to Keystile, proxy_pass to the upstream."""
    port = free_port()
    conf = tmp_path / "nginx.conf"
    text = NGINX_CONF.format(
        root=tmp_path, port=port, upstream=env.upstream.port, keystile=env.proxy.port
    )
    conf.write_text(text)
    process = subprocess.Popen(
        [nginx_binary, "-p", str(tmp_path), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(10)


async def wait_listening(url: str) -> None:
    host, port = url.removeprefix("http://").split(":")
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection(host, int(port))
        except OSError:
            await asyncio.sleep(0.025)
            continue
        writer.close()
        return
    raise AssertionError("nginx did not start")


@pytest.mark.slow
async def test_nginx_auth_request_lets_valid_credentials_through(
    env: Env, nginx: str, http: aiohttp.ClientSession
) -> None:
    """Through nginx auth_request: a valid token passes with identity; others are refused."""
    await wait_listening(nginx)
    async with http.get(f"{nginx}/orders/7", headers=env.bearer()) as response:
        assert response.status == 200
    seen = env.upstream.seen[-1]
    assert (seen.raw_path, seen.header("X-Auth-User")) == ("/o/7", ["alice"])
    assert seen.header("Authorization") == []
    async with http.get(f"{nginx}/orders/7") as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="keystile"'
    async with http.post(f"{nginx}/orders/7", headers=env.bearer(env.tokens.read_orders)) as r:
        assert r.status == 403
    assert len(env.upstream.seen) == 1
