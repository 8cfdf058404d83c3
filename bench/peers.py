"""The third-party baselines: nginx as the limit of a proxy hop, Caddy as a peer.

Both come from Debian's packages (``apt-get install nginx-light caddy``); when
one is not installed its start function answers None and the run says so.
nginx proxies to the upstream over a keep-alive pool; Caddy checks HTTP Basic
credentials against a bcrypt hash (``caddy hash-password``, cost 14) on every
request before ``reverse_proxy``, a peer that, like Keystile, verifies a
hashed secret (and, like Keystile, remembers what it verified).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from procs import Proc, Processes, free_port, wait_until_ready


def start_nginx(procs: Processes, upstream: Proc, workers: int) -> Proc | None:
    # Debian puts nginx in /usr/sbin, which a non-root PATH may lack.
    binary = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if binary is None:
        return None
    port = free_port()
    prefix = procs.workdir / "nginx"
    prefix.mkdir(exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(_nginx_conf(prefix, port, upstream.port, workers), encoding="utf-8")
    command = [binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
    proc = procs.spawn("nginx", command, port)
    wait_until_ready(proc)
    return proc


def _nginx_conf(prefix: Path, port: int, upstream_port: int, workers: int) -> str:
    return f"""\
worker_processes {workers};
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    upstream bench {{ server 127.0.0.1:{upstream_port}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{port} reuseport;
        location / {{
            proxy_pass http://bench;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def start_caddy(
    procs: Processes, upstream: Proc, workers: int, user: str, password: str
) -> Proc | None:
    """Caddy's reverse_proxy behind basicauth (bcrypt), when Debian's caddy is installed."""
    binary = shutil.which("caddy")
    if binary is None:
        return None
    home = procs.workdir / "caddy"
    home.mkdir(exist_ok=True)
    env = {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home),
        "XDG_DATA_HOME": str(home),
        "GOMAXPROCS": str(workers),
    }
    hashed = subprocess.run(
        [binary, "hash-password", "--plaintext", password],
        capture_output=True, text=True, check=True, env={**os.environ, **env},
    ).stdout.strip()  # fmt: skip
    port = free_port()
    caddyfile = home / "Caddyfile"
    caddyfile.write_text(_caddyfile(port, upstream.port, user, hashed), encoding="utf-8")
    command = [binary, "run", "--config", str(caddyfile), "--adapter", "caddyfile"]
    proc = procs.spawn("caddy", command, port, env)
    wait_until_ready(proc)
    return proc


def _caddyfile(port: int, upstream_port: int, user: str, hashed: str) -> str:
    # Debian bookworm ships Caddy 2.6, where the directive is still spelled
    # "basicauth" (2.8 renamed it basic_auth and kept the old name as an alias).
    return f"""\
{{
    admin off
    auto_https off
}}
http://127.0.0.1:{port} {{
    basicauth {{
        {user} {hashed}
    }}
    reverse_proxy 127.0.0.1:{upstream_port}
}}
"""
