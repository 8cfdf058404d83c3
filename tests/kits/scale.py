"""Real servers past one Redis: a primary, its replica and a sentinel; a three-node cluster."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from redis.crc import key_slot

from sidecar.ops import embedded
from sidecar.store import keys
from tests.kits.redis import RedisProcess, free_port

SERVICE = "keystile"
SLOTS = 16384


def wait_for(check: object, what: str, seconds: float = 10) -> None:
    """Until ``check()`` is true, failing the test with ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


@contextmanager
def sentinel(workdir: Path, primary: RedisProcess) -> Iterator[int]:
    """One sentinel watching ``primary`` (quorum 1, failover in about a second): its port."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = workdir / "sentinel.conf"  # the sentinel rewrites it: a file of its own
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {workdir}\n"
        f"sentinel monitor {SERVICE} 127.0.0.1 {primary.port} 1\n"
        f"sentinel down-after-milliseconds {SERVICE} 200\n"
        f"sentinel failover-timeout {SERVICE} 1000\n"
    )
    binary = embedded.find_binary(None)
    process = subprocess.Popen(
        [binary, str(conf), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    client = redis.Redis(port=port, decode_responses=True)
    try:
        # Until it has seen the replica: with none known there is nothing to promote.
        wait_for(lambda: _replicas_known(client), "the sentinel never saw the replica")
        yield port
    finally:
        client.close()
        process.terminate()
        process.wait(10)


def _replicas_known(client: redis.Redis) -> bool:
    try:
        return bool(client.sentinel_slaves(SERVICE))
    except redis.ConnectionError:
        return False


def role(server: RedisProcess) -> str:
    client = redis.Redis(port=server.port, decode_responses=True)
    try:
        return str(client.info("replication")["role"])
    finally:
        client.close()


@contextmanager
def cluster(workdir: Path) -> Iterator[list[RedisProcess]]:
    """Three primaries sharing the slots, state ok; the node owning ``{ks}`` comes first."""
    nodes = [
        RedisProcess(workdir / f"node{n}", "--cluster-enabled", "yes",
                     "--cluster-node-timeout", "1000")
        for n in range(3)
    ]  # fmt: skip
    for node in nodes:
        node.port = cluster_port()
    try:
        for node in nodes:
            node.start()
        clients = [redis.Redis(port=node.port, decode_responses=True) for node in nodes]
        third = SLOTS // 3
        for n, client in enumerate(clients):
            top = SLOTS if n == 2 else (n + 1) * third
            client.execute_command("CLUSTER ADDSLOTS", *range(n * third, top))
            client.execute_command("CLUSTER MEET", "127.0.0.1", nodes[0].port)
        wait_for(lambda: all(_settled(client) for client in clients), "the cluster never formed")
        for client in clients:
            client.close()
        owner = min(key_slot(keys.TAG.encode()) // third, 2)
        yield [nodes[owner], *(node for n, node in enumerate(nodes) if n != owner)]
    finally:
        for node in nodes:
            node.stop()


def cluster_port() -> int:
    """A free port whose cluster bus port (the port + 10000) is free and below 65536 too."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        try:
            with socket.socket() as bus:
                bus.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port


def _settled(client: redis.Redis) -> bool:
    info = client.cluster("info")
    return info["cluster_state"] == "ok" and int(info["cluster_known_nodes"]) == 3
