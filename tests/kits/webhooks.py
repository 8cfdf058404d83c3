"""A real webhook receiver on loopback for the notify tests: it records every call and
answers from a script (statuses in turn, then 200), or hangs."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.kits.redis import free_port

DOCS = Path(__file__).resolve().parents[2] / "docs" / "notify.md"


@dataclass
class Call:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    #: Statuses answered in turn; once used up, 200.
    statuses: list[int] = field(default_factory=list)
    hang: bool = False
    calls: list[Call] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, request: web.Request) -> web.Response:
        self.calls.append(Call(dict(request.headers), await request.read()))
        self.arrived.set()
        if self.hang:
            await asyncio.sleep(3600)
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)

    async def wait_for(self, count: int, within: float = 5) -> None:
        async with asyncio.timeout(within):
            while len(self.calls) < count:
                self.arrived.clear()
                await self.arrived.wait()


@asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncIterator[Receiver]:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    receiver.port = free_port()
    await web.TCPSite(runner, "127.0.0.1", receiver.port).start()
    try:
        yield receiver
    finally:
        await runner.cleanup()


def documented_verifier(name: str = "verify") -> Any:
    """The function ``name`` docs/notify.md prints for receivers, run as written."""
    page = DOCS.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", page, re.S)
    assert blocks, "docs/notify.md has no python verifier"
    scope: dict[str, Any] = {}
    for block in blocks:
        exec(block, scope)  # noqa: S102 (our own documentation, checked to work)
    return scope[name]
