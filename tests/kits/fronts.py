"""Real fronts for the forward-auth tests: nginx, Traefik and Envoy started from the
configurations of docs/forward-auth.md, an echo upstream, and ``keystile serve``.

Everything listens on 127.0.0.1 on free ports; the documented ports (8000 for
the front, 8080 for Keystile, 9000 for the upstream) are replaced, and each
replacement must find its text, so the page and the tests cannot drift apart.
"""

from __future__ import annotations

import http.client
import json
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.kits.processes import KEYSTILE
from tests.kits.redis import free_port

DOC = Path(__file__).resolve().parents[2] / "docs" / "forward-auth.md"
BIN = Path(sys.executable).parent
Headers = list[tuple[str, str]]
Sent = Sequence[tuple[str, str]]


def documented(name: str) -> str:
    """The fenced block after ``<!-- tested: name -->`` in docs/forward-auth.md."""
    found = re.search(rf"<!-- tested: {name} -->\n```\w*\n(.*?)```", DOC.read_text(), re.S)
    assert found is not None, f"docs/forward-auth.md has no block tested as {name}"
    return found.group(1)


def filled(text: str, replacements: Mapping[str, str]) -> str:
    for old, new in replacements.items():
        assert old in text, f"{old!r} is not in the documented config"
        text = text.replace(old, new)
    return text


@dataclass
class Reply:
    status: int
    headers: Headers
    body: bytes

    def header(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def upstream_headers(self) -> Headers:
        """The headers the echo upstream received (this reply came from it)."""
        return [(n, v) for n, v in self.json()["headers"]]

    def upstream(self, name: str) -> list[str]:
        return [v for n, v in self.upstream_headers if n.lower() == name.lower()]


def send(port: int, method: str, path: str, headers: Sent = ()) -> Reply:
    """One request on a fresh connection, the headers exactly as given."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return Reply(response.status, response.getheaders(), response.read())
    finally:
        connection.close()


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: EchoServer

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen += 1
        body = json.dumps({"path": self.path, "headers": list(self.headers.items())}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read what the upstream saw from its answers."""


class EchoServer(ThreadingHTTPServer):
    """An upstream on loopback that answers with the headers it received."""

    daemon_threads = True
    seen = 0

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", free_port()), _Echo)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])


@dataclass
class Keystile:
    """``keystile serve`` on a config of its own; stopped and started by the tests."""

    config: Path
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [KEYSTILE, "serve", "--config", str(self.config), "--workers", "1"],
                stdout=subprocess.DEVNULL, stderr=log,
            )  # fmt: skip
        wait_until(lambda: _ready(self.port), self.process, self.log, "keystile")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_keystile/readyz", timeout=2) as r:
            return bool(r.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def wait_until(
    done: Callable[[], bool], process: subprocess.Popen[bytes], log: Path, name: str
) -> None:
    """Until ``done()``; a process that exits first fails at once, with its log."""
    deadline = time.monotonic() + 30
    while not done():
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{name} did not start: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)


@dataclass
class Front:
    """A front on 127.0.0.1:``port`` that asks Keystile and forwards to the echo upstream."""

    name: str
    port: int
    process: subprocess.Popen[bytes]

    def send(self, method: str, path: str, headers: Sent = ()) -> Reply:
        return send(self.port, method, path, headers)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def _routing(port: int) -> bool:
    """The front answers /orders/ through Keystile: a request without a credential gets 401."""
    try:
        return send(port, "GET", "/orders/probe").status == 401
    except OSError:
        return False


def start_front(name: str, root: Path, keystile: int, upstream: int) -> Front:
    """The front ``name`` from its documented config, once it routes through Keystile."""
    log = root / f"{name}.log"
    argv, port = FRONTS[name](root, keystile, upstream)
    with log.open("ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=root)
    front = Front(name, port, process)
    try:
        wait_until(lambda: _routing(port), process, log, name)
    except AssertionError:
        front.stop()
        raise
    return front


NGINX_MAIN = """daemon off;
master_process off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/nginx-error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
{site}
}}
"""


def nginx_argv(root: Path, keystile: int, upstream: int) -> tuple[list[str], int]:
    port = free_port()
    site = filled(
        documented("nginx"),
        {
            "listen 8000;": f"listen 127.0.0.1:{port};",
            "127.0.0.1:8080": f"127.0.0.1:{keystile}",
            "127.0.0.1:9000": f"127.0.0.1:{upstream}",
        },
    )
    conf = root / "nginx.conf"
    conf.write_text(NGINX_MAIN.format(root=root, site=site))
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    return [binary, "-p", str(root), "-c", str(conf)], port


def traefik_argv(root: Path, keystile: int, upstream: int) -> tuple[list[str], int]:
    port = free_port()
    dynamic = root / "keystile.yml"
    addresses = {
        "127.0.0.1:8080": f"127.0.0.1:{keystile}",
        "127.0.0.1:9000": f"127.0.0.1:{upstream}",
    }
    dynamic.write_text(filled(documented("traefik"), addresses))
    static = filled(
        documented("traefik-static"),
        {"=:8000": f"=127.0.0.1:{port}", "/etc/traefik/keystile.yml": str(dynamic)},
    )
    argv = shlex.split(static.replace("\\\n", " "))
    assert argv[0] == "traefik"
    return [str(BIN / "traefik"), *argv[1:], "--log.level=ERROR"], port


def envoy_argv(root: Path, keystile: int, upstream: int) -> tuple[list[str], int]:
    port = free_port()
    bootstrap = root / "envoy.yaml"
    listener = "{address: 0.0.0.0, port_value: 8000}"
    addresses = {
        listener: listener.replace("0.0.0.0", "127.0.0.1").replace("8000", str(port)),
        "http://127.0.0.1:8080": f"http://127.0.0.1:{keystile}",
        "port_value: 8080": f"port_value: {keystile}",
        "port_value: 9000": f"port_value: {upstream}",
    }
    bootstrap.write_text(filled(documented("envoy"), addresses))
    # No hot restart: several Envoys on one machine would share its memory segment.
    argv = [str(BIN / "envoy"), "-c", str(bootstrap), "--disable-hot-restart"]
    return [*argv, "--log-level", "error"], port


FRONTS: dict[str, Callable[[Path, int, int], tuple[list[str], int]]] = {
    "nginx": nginx_argv,
    "traefik": traefik_argv,
    "envoy": envoy_argv,
}
