"""Acknowledged revocation: the replica registry, ``propagation`` and ``GET /replicas``
(spec section 10), on real ``keystile serve`` processes sharing one redis-server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sidecar.store import keys
from sidecar.store.exportfile import export_lines
from sidecar.store.invariants import find_problems
from sidecar.store.snapshot import read_snapshot
from tests.kits.admin import Harness, harness
from tests.kits.processes import bootstrap, run, serving, write_config
from tests.test_cli import orders_upstream

#: Short, so the frozen-replica test waits half a second rather than one.
ACK_TIMEOUT = 0.5


# -- in process: every change that must reach the replicas says how it went --------


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[Harness]:
    async with harness(redis_url) as running:
        await _until(lambda: _count_replicas(running), lambda n: n == 2)
        yield running


async def _count_replicas(admin: Harness) -> int:
    return len((await admin.call("GET", "/replicas")).body["items"])


def _all_acknowledged(propagation: dict[str, Any], replicas: int) -> bool:
    return (
        propagation["replicas"] == propagation["acknowledged"] == replicas
        and not propagation["pending"]
    )


async def test_token_changes_answer_their_propagation(admin: Harness) -> None:
    """Revoke, regenerate, bulk revoke and bulk delete answer once both replicas applied them."""
    await admin.user("alice")
    ids = [(await admin.token(user="alice"))["client_id"] for _ in range(4)]

    answers = [
        await admin.call("POST", f"/tokens/{ids[0]}/revoke"),
        await admin.call("POST", f"/tokens/{ids[1]}/regenerate"),
        await admin.call("POST", "/tokens/bulk-revoke", json={"client_ids": [ids[2]]}),
        await admin.call("POST", "/tokens/bulk-delete", json={"client_ids": [ids[3]]}),
    ]

    for reply in answers:
        assert reply.status == 200, reply.body
        assert _all_acknowledged(reply.body["propagation"], 2), reply.body
        assert reply.body["propagation"]["slowest_ms"] >= 0


async def test_user_and_role_changes_answer_their_propagation(admin: Harness) -> None:
    """Deactivating a user and putting a role carry propagation; other user edits do not wait."""
    await admin.user("alice")

    deactivated = await admin.call("PATCH", "/users/alice", json={"active": False})
    renamed = await admin.call("PATCH", "/users/alice", json={"display_name": "Alice"})
    role = await admin.call("PUT", "/roles/ops", json={"access": {"orders": "read"}})

    assert _all_acknowledged(deactivated.body["propagation"], 2)
    assert "propagation" not in renamed.body
    assert role.status == 201
    assert _all_acknowledged(role.body["propagation"], 2)


async def test_a_deletion_keeps_its_204_and_says_propagation_in_a_header(admin: Harness) -> None:
    """DELETE of a token, a user or a role answers 204 with Keystile-Propagation as JSON."""
    await admin.user("alice")
    await admin.call("PUT", "/roles/ops", json={"access": {"orders": "read"}})
    client_id = (await admin.token(user="alice"))["client_id"]

    replies = [
        await admin.call("DELETE", f"/tokens/{client_id}"),
        await admin.call("DELETE", "/users/alice"),
        await admin.call("DELETE", "/roles/ops"),
    ]

    for reply in replies:
        assert reply.status == 204
        assert _all_acknowledged(json.loads(reply.headers["Keystile-Propagation"]), 2)


async def test_the_registry_is_neither_checked_nor_exported(admin: Harness) -> None:
    """While replicas are registered, the store check is clean and the snapshot leaves them out."""
    await admin.user("alice")
    registered = await admin.store.redis.hlen(keys.REPLICAS)

    snapshot = await read_snapshot(admin.store.redis)
    exported = "\n".join(export_lines(snapshot, "2026-01-01T00:00:00Z"))

    assert registered == 2
    assert find_problems(snapshot) == []
    assert "replicas" not in exported


# -- real processes: two `keystile serve`, one worker each --------------------------


@dataclass
class Replica:
    process: asyncio.subprocess.Process
    ports: dict[str, int]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.ports['admin']}/admin/v1{path}"


@dataclass
class Pair:
    a: Replica
    b: Replica
    token: str
    http: aiohttp.ClientSession

    async def call(self, replica: Replica, method: str, path: str, body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        url = replica.url(path)
        async with self.http.request(method, url, json=body, headers=headers) as response:
            assert response.status in (200, 201), await response.text()
            return await response.json()

    async def replicas(self, replica: Replica) -> dict[int, dict[str, Any]]:
        """The live replicas ``replica`` lists, by the pid in their id."""
        items = (await self.call(replica, "GET", "/replicas"))["items"]
        return {int(item["id"].split(":")[-2]): item for item in items}

    async def new_token(self) -> str:
        return str((await self.call(self.a, "POST", "/tokens", {"user": "svc"}))["client_id"])


@asynccontextmanager
async def two_serves(
    tmp_path: Path, redis_url: str, cache: str = "", ack_timeout: float = ACK_TIMEOUT
) -> AsyncIterator[Pair]:
    """Two ``keystile serve --workers 1`` on one redis-server; ``cache``: ``[cache]`` lines."""
    upstream = await orders_upstream()
    where = str(upstream.make_url("")).rstrip("/")
    configs = [tmp_path / "a.toml", tmp_path / "b.toml"]
    ports = [
        write_config(path, where, redis_url, admin={"ack_timeout_seconds": ack_timeout})
        for path in configs
    ]
    for path in configs:
        path.write_text(path.read_text() + f"\n[cache]\n{cache}\n")
    async with AsyncExitStack() as stack:
        stack.push_async_callback(upstream.close)
        token = await bootstrap(configs[0])
        started = [
            await stack.enter_async_context(serving(c, p["proxy"], "--workers", "1"))
            for c, p in zip(configs, ports, strict=True)
        ]
        http = await stack.enter_async_context(aiohttp.ClientSession())
        pair = Pair(*(Replica(s, p) for s, p in zip(started, ports, strict=True)), token, http)
        pids = {pair.a.process.pid, pair.b.process.pid}
        await _until(lambda: pair.replicas(pair.a), lambda seen: set(seen) == pids)
        await pair.call(pair.a, "POST", "/users", {"username": "svc"})
        yield pair


async def _until(read: Callable[[], Any], done: Callable[[Any], bool], within: float = 5.0) -> Any:
    """Read until ``done`` says so, at most ``within`` seconds; the last value read."""
    deadline = time.monotonic() + within
    while True:
        value = await read()
        if done(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


def _pid_of(replica_id: str) -> int:
    return int(replica_id.split(":")[-2])


async def test_two_serves_acknowledge_a_revoke_and_list_with_lag_0(
    tmp_path: Path, redis_url: str
) -> None:
    """A revoke on one serve answers once both serves acknowledged it; both list with lag 0."""
    async with two_serves(tmp_path, redis_url) as pair:
        client_id = await pair.new_token()

        revoked = await pair.call(pair.a, "POST", f"/tokens/{client_id}/revoke")
        listed = await pair.replicas(pair.b)
        code, out, err = await run(
            "replicas", "--admin-url", f"http://127.0.0.1:{pair.b.ports['admin']}",
            env={"KEYSTILE_TOKEN": pair.token},
        )  # fmt: skip

    assert revoked["propagation"]["replicas"] == 2
    assert revoked["propagation"]["acknowledged"] == 2
    assert revoked["propagation"]["pending"] == []
    assert [item["lag"] for item in listed.values()] == [0, 0]
    applied = {item["last_generation_applied"] for item in listed.values()}
    assert applied == {item["generation"] for item in listed.values()}
    assert set(listed) == {pair.a.process.pid, pair.b.process.pid}
    assert code == 0, err
    assert out.splitlines()[0].split()[:3] == ["ID", "Host", "Version"]
    assert len(out.splitlines()) == 3


async def test_a_frozen_replica_is_pending_at_the_timeout_and_catches_up(
    tmp_path: Path, redis_url: str
) -> None:
    """A SIGSTOPped serve is pending and the answer comes at the timeout; SIGCONT: lag 0 again."""
    async with two_serves(tmp_path, redis_url) as pair:
        client_id = await pair.new_token()
        os.kill(pair.b.process.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            revoking = asyncio.ensure_future(
                pair.call(pair.a, "POST", f"/tokens/{client_id}/revoke")
            )
            await asyncio.sleep(0.1)
            meanwhile = await pair.call(pair.a, "GET", f"/tokens/{client_id}")
            answered_meanwhile = not revoking.done()
            revoked = await revoking
            waited = time.monotonic() - started
        finally:
            os.kill(pair.b.process.pid, signal.SIGCONT)
        caught_up = await _until(
            lambda: pair.replicas(pair.a),
            lambda seen: pair.b.process.pid in seen and seen[pair.b.process.pid]["lag"] == 0,
        )

    propagation = revoked["propagation"]
    assert propagation["replicas"] == 2
    assert propagation["acknowledged"] == 1
    assert [_pid_of(replica) for replica in propagation["pending"]] == [pair.b.process.pid]
    assert ACK_TIMEOUT <= waited < ACK_TIMEOUT + 1.0
    assert answered_meanwhile and meanwhile["status"] == "revoked"  # the wait blocks no one
    assert caught_up[pair.b.process.pid]["lag"] == 0


async def test_a_killed_replica_drops_out_after_its_lease(tmp_path: Path, redis_url: str) -> None:
    """A SIGKILLed serve stays listed at most its lease, then later changes do not wait for it."""
    async with two_serves(tmp_path, redis_url) as pair:
        os.kill(pair.b.process.pid, signal.SIGKILL)
        await pair.b.process.wait()
        killed = time.monotonic()
        listed = await _until(
            lambda: pair.replicas(pair.a), lambda seen: pair.b.process.pid not in seen
        )
        gone_after = time.monotonic() - killed
        revoked = await pair.call(pair.a, "POST", f"/tokens/{await pair.new_token()}/revoke")

    assert set(listed) == {pair.a.process.pid}
    assert gone_after < 1.0 + 1.0  # the lease (cache.max_staleness_seconds), and a margin
    assert revoked["propagation"] == {**revoked["propagation"], "replicas": 1, "pending": []}


async def test_a_clean_shutdown_leaves_the_registry_at_once(tmp_path: Path, redis_url: str) -> None:
    """SIGTERM removes the serve's entry itself, long before its lease would run out."""
    async with two_serves(tmp_path, redis_url, cache="max_staleness_seconds = 30") as pair:
        pair.b.process.terminate()
        await pair.b.process.wait()
        listed = await pair.replicas(pair.a)

    assert set(listed) == {pair.a.process.pid}


async def test_a_wait_ends_once_only_replicas_no_longer_live_are_pending(
    tmp_path: Path, redis_url: str
) -> None:
    """A replica killed just before a revoke stays pending, but the wait ends with its lease."""
    async with two_serves(tmp_path, redis_url, ack_timeout=6.0) as pair:
        client_id = await pair.new_token()
        os.kill(pair.b.process.pid, signal.SIGKILL)
        await pair.b.process.wait()
        started = time.monotonic()
        revoked = await pair.call(pair.a, "POST", f"/tokens/{client_id}/revoke")
        waited = time.monotonic() - started

    assert [_pid_of(replica) for replica in revoked["propagation"]["pending"]] == [
        pair.b.process.pid
    ]
    assert waited < 6.0 - 2.0  # its lease (1 s) and a margin, well before the timeout
