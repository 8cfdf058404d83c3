"""``keystile store check | export | import`` as the installed command, on real redis-servers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sidecar.store import keys
from sidecar.store.management import AdminStore
from tests.kits.processes import run, serving, write_config
from tests.kits.redis import RedisProcess, make_config, seed_token
from tests.kits.store import admin_store, lived_in

__all__ = ["admin_store"]  # a fixture, used by name


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=request.headers.get("X-Auth-User", ""))

    app = web.Application()
    app.router.add_get("/{tail:.*}", hello)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


async def test_check_names_each_problem_and_repair_clears_the_safe_ones(
    admin_store: AdminStore, redis_url: str, tmp_path: Path
) -> None:
    """check exits 1 with one line per problem; --repair says what it did and exits 0."""
    kept, _ = await lived_in(admin_store)
    config = tmp_path / "keystile.toml"
    write_config(config, "http://127.0.0.1:9", redis_url)
    await admin_store.redis.zrem(keys.TOKENS, kept)

    code, out, err = await run("store", "check", "--config", str(config))
    assert (code, out) == (1, f"token {kept} is missing from {{ks}}:tokens\n")
    assert "1 problem(s) in the store; 1 can be repaired with --repair" in err

    code, out, _ = await run("store", "check", "--config", str(config), "--repair")
    assert code == 0
    assert out.splitlines()[0] == (
        f"repaired: token {kept} is missing from {{ks}}:tokens: indexed {kept} in {{ks}}:tokens"
    )
    assert out.splitlines()[1].startswith("the store is consistent: users 2, roles 1, tokens 2,")


async def test_a_store_moved_by_export_and_import_verifies_on_the_proxy(
    admin_store: AdminStore,
    redis_url: str,
    private_redis: RedisProcess,
    upstream: str,
    tmp_path: Path,
) -> None:
    """A token made on one Redis works through a proxy serving the Redis it was imported into."""
    issued = await seed_token(admin_store, make_config(), user="svc", access={"orders": "read"})
    source, target = tmp_path / "source.toml", tmp_path / "target.toml"
    write_config(source, upstream, redis_url)
    ports = write_config(target, upstream, private_redis.url)
    dump = tmp_path / "keystile.jsonl"

    code, _, err = await run("store", "export", "--config", str(source), "-o", str(dump))
    assert code == 0, err
    assert dump.stat().st_mode & 0o077 == 0  # the hashes are nobody else's business
    code, _, err = await run("store", "import", "--config", str(target), str(dump))
    assert code == 0, err
    assert "imported users 1, roles 0, tokens 1," in err

    async with serving(target, ports["proxy"]), aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{ports['proxy']}/orders/1"
        headers = {"Authorization": f"Bearer {issued.bearer}"}
        async with http.get(url, headers=headers) as response:
            assert (response.status, await response.text()) == (200, "svc")
    code, out, _ = await run("store", "check", "--config", str(target))
    assert code == 0, out


async def test_import_refuses_a_store_that_holds_records(
    admin_store: AdminStore, redis_url: str, tmp_path: Path
) -> None:
    """Importing over records exits 1 with one line saying the store must be empty."""
    await seed_token(admin_store, make_config())
    config = tmp_path / "keystile.toml"
    write_config(config, "http://127.0.0.1:9", redis_url)
    dump = tmp_path / "keystile.jsonl"
    assert (await run("store", "export", "--config", str(config), "-o", str(dump)))[0] == 0

    code, _, err = await run("store", "import", "--config", str(config), str(dump))

    assert code == 1
    assert (
        "keystile: import only into an empty store: it holds tokens 1, users 1, "
        "issued client_ids 1, audit entries 2; nothing was written"
    ) in err.splitlines()


async def test_export_into_a_fifo_writes_through_it_and_leaves_it_a_fifo(
    admin_store: AdminStore, redis_url: str, tmp_path: Path
) -> None:
    """export -o onto a device or pipe (/dev/null, a fifo) writes into it, never replaces it."""
    import asyncio
    import os
    import stat

    await lived_in(admin_store)
    config = tmp_path / "keystile.toml"
    write_config(config, "http://127.0.0.1:9", redis_url)
    fifo = tmp_path / "export.fifo"
    os.mkfifo(fifo)

    def drain() -> str:
        with fifo.open(encoding="utf-8") as reader:
            return reader.read()

    received = asyncio.get_running_loop().run_in_executor(None, drain)
    code, _, _ = await run("store", "export", "--config", str(config), "-o", str(fifo))
    text = await asyncio.wait_for(received, 30)
    assert code == 0
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert '"kind"' in text.splitlines()[0] or text.count("\n") > 2
