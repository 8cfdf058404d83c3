"""TLS on both listeners (sidecar/ops/tls.py), through the installed ``keystile serve``."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sidecar import config as configuration
from sidecar.ops import tls
from tests.kits.processes import bootstrap, run, serving, write_config
from tests.test_cli import orders_upstream


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(workdir: Path) -> tuple[Path, Path]:
    """A fresh test CA: (its certificate, its key)."""
    cert, key = workdir / "ca.pem", workdir / "ca.key"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-days", "1", "-subj", "/CN=Keystile test CA",
             "-keyout", str(key), "-out", str(cert))  # fmt: skip
    return cert, key


def issue(ca: tuple[Path, Path], cert: Path, key: Path, serial: int) -> None:
    """Write a certificate for 127.0.0.1 signed by ``ca``, with ``serial``, and its key."""
    request, extensions = cert.with_suffix(".csr"), cert.with_suffix(".ext")
    extensions.write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(request))  # fmt: skip
    _openssl("x509", "-req", "-in", str(request), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
             "-set_serial", str(serial), "-days", "1", "-extfile", str(extensions),
             "-out", str(cert))  # fmt: skip


def tls_config(path: Path, upstream: str) -> dict[str, int]:
    """write_config's config with both listeners on TLS, the files named relative to it."""
    ports = write_config(path, upstream)
    text = path.read_text()
    for port in ports.values():
        listen = f'listen = "127.0.0.1:{port}"'
        text = text.replace(listen, f'{listen}\ntls_cert = "tls/cert.pem"\ntls_key = "tls/key.pem"')
    path.write_text(text)
    return ports


async def peer_serial(port: int, client: ssl.SSLContext) -> str:
    """The serial number of the certificate a new connection to ``port`` is shown."""
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
    serial = writer.get_extra_info("peercert")["serialNumber"]
    writer.close()
    return str(serial)


async def all_show(serial: str, ports: list[int], client: ssl.SSLContext) -> None:
    """Until 10 new connections in a row to each port (any worker) show ``serial``."""
    deadline = time.monotonic() + 15
    for port in ports:
        streak = 0
        while streak < 10:
            assert time.monotonic() < deadline, f"port {port} still shows another certificate"
            streak = streak + 1 if await peer_serial(port, client) == serial else 0


async def call(
    client: ssl.SSLContext, method: str, url: str, token: str, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client)) as http,
        http.request(method, url, json=body, headers=headers) as response,
    ):
        return response.status, await response.json()


async def console_cookie(client: ssl.SSLContext, admin: str, token: str) -> str:
    """The Set-Cookie header of a console sign-in, sent without X-Forwarded-Proto."""
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client)) as http,
        http.post(f"{admin}/console/v1/session", json={"token": token}) as response,
    ):
        assert response.status == 200, await response.text()
        return response.headers["Set-Cookie"]


async def test_workers_serve_tls_and_reload_on_sighup(tmp_path: Path) -> None:
    """With --workers 2 both listeners speak only https, and SIGHUP swaps the certificate live."""
    ca = make_ca(tmp_path)
    (tmp_path / "tls").mkdir()
    cert, key = tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem"
    issue(ca, cert, key, serial=0x1111)
    client = ssl.create_default_context(cafile=ca[0])
    upstream = await orders_upstream()
    config = tmp_path / "keystile.toml"
    ports = tls_config(config, str(upstream.make_url("")).rstrip("/"))
    proxy, admin = f"https://127.0.0.1:{ports['proxy']}", f"https://127.0.0.1:{ports['admin']}"
    try:
        async with serving(config, ports["proxy"], "--workers", "2", tls=client) as process:
            root = await bootstrap(config)
            await call(client, "POST", f"{admin}/admin/v1/users", root, {"username": "svc"})
            body = {"user": "svc", "access": {"orders": "read"}}
            _, made = await call(client, "POST", f"{admin}/admin/v1/tokens", root, body)
            assert await call(client, "GET", f"{proxy}/orders/42", made["token"]) == (
                200,
                {"path": "/42", "user": "svc"},
            )
            status, me = await call(client, "GET", f"{admin}/admin/v1/me", root)
            assert (status, me["user"]["username"]) == (200, "root")
            assert "Secure" in await console_cookie(client, admin, root)
            # The command line finds https:// in the config; the CA comes from --ca-file.
            code, out, err = await run(
                "users", "list", "--config", str(config), "--ca-file", str(ca[0]),
                env={"KEYSTILE_TOKEN": root},
            )  # fmt: skip
            assert (code, "svc" in out) == (0, True), err
            for port in ports.values():
                with pytest.raises(aiohttp.ClientError):
                    await call(client, "GET", f"http://127.0.0.1:{port}/_keystile/healthz", root)
            await all_show("1111", list(ports.values()), client)

            issue(ca, cert, key, serial=0x2222)
            os.kill(process.pid, signal.SIGHUP)
            await all_show("2222", list(ports.values()), client)

            cert.write_text("not a certificate\n")
            os.kill(process.pid, signal.SIGHUP)
            await asyncio.sleep(1)
            await all_show("2222", list(ports.values()), client)
            assert (await call(client, "GET", f"{proxy}/orders/1", made["token"]))[0] == 200
            assert process.returncode is None
        assert process.stderr is not None
        said = (await process.stderr.read()).decode()
        assert "proxy.tls_cert" in said and "the old one stays" in said, said
    finally:
        await upstream.close()


async def test_a_missing_key_file_stops_the_start_naming_it(tmp_path: Path) -> None:
    """serve with tls_key naming no file exits 1 with one line naming proxy.tls_key."""
    (tmp_path / "tls").mkdir()
    issue(make_ca(tmp_path), tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem", 1)
    (tmp_path / "tls" / "key.pem").unlink()
    config = tmp_path / "keystile.toml"
    tls_config(config, "http://127.0.0.1:9")
    code, _, err = await run("serve", "--config", str(config), "--workers", "2")
    assert code == 1
    assert "keystile: proxy.tls_key: cannot read" in err, err
    assert "Traceback" not in err


def test_a_key_of_another_certificate_is_named(tmp_path: Path) -> None:
    """A key that does not belong to the certificate is refused naming admin.tls_key."""
    ca = make_ca(tmp_path)
    issue(ca, tmp_path / "a.pem", tmp_path / "a.key", 1)
    issue(ca, tmp_path / "b.pem", tmp_path / "b.key", 2)
    with pytest.raises(tls.TlsError, match=r"^admin\.tls_key: the private key does not match"):
        tls.server_context(tmp_path / "a.pem", tmp_path / "b.key", "admin")


def test_tls_keys_come_in_pairs_and_sit_beside_the_config(tmp_path: Path) -> None:
    """tls_cert alone names tls_key; relative paths are read from the config file's directory."""
    with pytest.raises(configuration.ConfigError, match=r"proxy\.tls_key: required"):
        configuration.parse({"proxy": {"tls_cert": "cert.pem"}}, {})
    path = tmp_path / "keystile.toml"
    path.write_text('[admin]\ntls_cert = "c.pem"\ntls_key = "/etc/k.pem"\n')
    admin = configuration.load(path, {}).admin
    assert (admin.tls_cert, admin.tls_key) == (tmp_path / "c.pem", Path("/etc/k.pem"))
