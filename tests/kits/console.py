"""Real parts for the web console's browser tests: ``keystile serve`` (two workers) on a
real redis-server, a real upstream behind its proxy, and Debian's chromium driven by
playwright. One of each per test module; each test opens its own browser context."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, sync_playwright

from tests.kits.cli import upstream as echo_upstream
from tests.kits.processes import KEYSTILE
from tests.kits.redis import CHEAP_HASHING, RedisProcess, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
#: Where the screenshots go: docs/screenshots/ when KEYSTILE_SCREENSHOTS=1 (to refresh the
#: committed ones), else a temporary directory, so a test run leaves the tree unchanged.
DOCS_SCREENSHOTS = Path(__file__).parents[2] / "docs" / "screenshots"


@dataclass
class Console:
    """A running ``keystile serve``, its root token, and a browser."""

    admin_url: str
    proxy_url: str
    root: str
    browser: Browser
    redis_url: str
    screenshots: Path

    def page(self, width: int = 1280, height: int = 900) -> Page:
        """A fresh browser context (no cookies) with one page at the console."""
        context = self.browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        page.set_default_timeout(10_000)
        return page

    def signed_in(self, token: str | None = None, **size: int) -> Page:
        page = self.page(**size)
        page.goto(self.admin_url + "/")
        page.get_by_label("Token").fill(token or self.root)
        page.get_by_role("button", name="Sign in").click()
        page.locator("#bar").wait_for()
        return page

    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        """One admin API call with a bearer token; answers (status, JSON body or None)."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {token or self.root}"}
        headers["Content-Type"] = "application/json"
        url = f"{self.admin_url}/admin/v1{path}"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 (loopback http only)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback http only)
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            raw = error.read()
            return error.code, json.loads(raw) if raw else None

    def token(self, user: str, **fields: Any) -> dict[str, Any]:
        """A new token (its user made first if need be); the answer holds ``token``."""
        self.api("POST", "/users", {"username": user})
        status, body = self.api("POST", "/tokens", {"user": user, **fields})
        assert status == 201, body
        return dict(body)

    def proxy_status(self, token: str) -> int:
        headers = {"Authorization": f"Bearer {token}"}
        url = f"{self.proxy_url}/orders/x"
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 (loopback http only)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback http only)
                return int(response.status)
        except urllib.error.HTTPError as error:
            return error.code

    def screenshot(self, page: Page, name: str) -> None:
        """Keep a picture of this page, for docs/console.md."""
        self.screenshots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(self.screenshots / f"{name}.png"))


def _write_config(path: Path, upstream: str, redis_url: str) -> dict[str, int]:
    """Two APIs (orders, billing) before one upstream, on free ports."""
    ports = {"proxy": free_port(), "admin": free_port()}
    hashing = "\n".join(f"{k} = {v}" for k, v in CHEAP_HASHING.items())
    path.write_text(
        f"""
[proxy]
listen = "127.0.0.1:{ports["proxy"]}"
[admin]
listen = "127.0.0.1:{ports["admin"]}"
[redis]
url = "{redis_url}"
timeout = 0.5
[hashing]
{hashing}
[log]
format = "text"
[[apis]]
name = "orders"
prefix = "/orders"
upstream = "{upstream}"
description = "Order service"
[[apis]]
name = "billing"
prefix = "/billing"
upstream = "{upstream}"
description = "Invoices and payments"
"""
    )
    return ports


def _wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    url = f"http://127.0.0.1:{port}/_keystile/readyz"
    for _ in range(600):
        if process.poll() is not None:
            raise AssertionError(f"keystile serve exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise AssertionError("keystile serve did not become ready")


def _bootstrap(config: Path) -> str:
    done = subprocess.run(
        [KEYSTILE, "bootstrap", "--config", str(config), "--user", "root"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout.strip()


@contextmanager
def running(workdir: Path) -> Iterator[Console]:
    stack = ExitStack()
    redis = RedisProcess(workdir / "redis")
    redis.start()
    config = workdir / "keystile.toml"
    ports = _write_config(config, stack.enter_context(echo_upstream()), redis.url)
    serve = subprocess.Popen(
        [KEYSTILE, "serve", "--config", str(config), "--workers", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ),
    )  # fmt: skip
    try:
        _wait_ready(ports["proxy"], serve)
        root = _bootstrap(config)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                yield Console(
                    admin_url=f"http://127.0.0.1:{ports['admin']}",
                    proxy_url=f"http://127.0.0.1:{ports['proxy']}",
                    root=root,
                    browser=browser,
                    redis_url=redis.url,
                    screenshots=(
                        DOCS_SCREENSHOTS
                        if os.environ.get("KEYSTILE_SCREENSHOTS") == "1"
                        else workdir / "screenshots"
                    ),
                )
            finally:
                browser.close()
    finally:
        serve.terminate()
        serve.wait(30)
        stack.close()
        redis.stop()
