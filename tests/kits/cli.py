"""A real ``keystile serve`` for the management command line's tests, and ways to run it.

One deployment per test module (serve on its embedded store, in front of a
stdlib upstream that echoes the identity headers); every test then runs the
installed ``keystile`` many times against it.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import pty
import ssl
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.kits.processes import KEYSTILE, bootstrap, wait_ready, write_config


class Echo(BaseHTTPRequestHandler):
    """The upstream: answers the identity headers the proxy set."""

    def do_GET(self) -> None:
        body = json.dumps({"user": self.headers.get("X-Auth-User")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass(frozen=True)
class Deployment:
    config: Path
    proxy_port: int
    admin_port: int
    admin_token: str

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def cli(self, *args: str, token: str | None = None, stdin: str | None = None,
            env: dict[str, str] | None = None) -> Result:  # fmt: skip
        """``keystile ARGS``, admin URL and credential in the environment, stdin not a tty."""
        own = {"KEYSTILE_ADMIN_URL": self.admin_url, "KEYSTILE_TOKEN": token or self.admin_token}
        return run_cli(*args, env={**own, **(env or {})}, stdin=stdin)

    def ok(self, *args: str, token: str | None = None) -> Result:
        """As ``cli``, asserting exit 0 and nothing alarming on stderr."""
        result = self.cli(*args, token=token)
        assert result.code == 0, result.err
        assert "Traceback" not in result.err
        return result

    def proxy_get(self, path: str, token: str) -> tuple[int, Any]:
        return http_get(f"http://127.0.0.1:{self.proxy_port}{path}", token)

    def admin_get(self, path: str) -> Any:
        code, body = http_get(f"{self.admin_url}/admin/v1{path}", self.admin_token)
        assert code == 200, body
        return body


def run_cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
    """The installed ``keystile``; without ``stdin`` its stdin is /dev/null (not a terminal)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("KEYSTILE_")}
    completed = subprocess.run(
        [KEYSTILE, *args],
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=60,
        check=False,
    )
    return Result(completed.returncode, completed.stdout, completed.stderr)


def http_get(url: str, token: str) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (loopback http only)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback http only)
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@contextmanager
def deployment(workdir: Path) -> Iterator[Deployment]:
    """``keystile serve`` (one worker, embedded store) until the block ends."""
    with upstream() as upstream_url:
        config = workdir / "keystile.toml"
        ports = write_config(config, upstream_url)
        serve = subprocess.Popen(
            [KEYSTILE, "serve", "--config", str(config), "--workers", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            asyncio.run(wait_ready(ports["proxy"], serve.poll))
            token = asyncio.run(bootstrap(config, "root"))
            yield Deployment(config, ports["proxy"], ports["admin"], token)
        finally:
            serve.terminate()
            serve.wait(30)


def on_terminal(*args: str, env: dict[str, str], answer: str = "") -> tuple[int, str]:
    """``keystile ARGS`` with a pseudo-terminal for stdin, stdout and stderr; what it showed."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("KEYSTILE_")}
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [KEYSTILE, *args], stdin=terminal, stdout=terminal, stderr=terminal, env={**base, **env}
    )
    os.close(terminal)
    os.write(controller, answer.encode())  # held by the terminal until the prompt reads it
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: the command has closed its end
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    return process.wait(30), shown.decode()


class Relay(BaseHTTPRequestHandler):
    """An https:// front for the admin API: each request passed on as it came."""

    target = ("127.0.0.1", 0)

    def _relay(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        upstream = http.client.HTTPConnection(*self.target, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        upstream.request(self.command, self.path, body=body, headers=headers)
        answer = upstream.getresponse()
        payload = answer.read()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("content-length", "connection", "date", "server"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        upstream.close()

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _relay

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def https_front(admin_port: int, workdir: Path) -> Iterator[tuple[str, Path]]:
    """The admin API behind TLS with a fresh self-signed certificate: (URL, its CA file)."""
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    handler = type("AdminRelay", (Relay,), {"target": ("127.0.0.1", admin_port)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{server.server_port}", cert
    finally:
        server.shutdown()
        server.server_close()
