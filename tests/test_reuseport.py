"""sidecar.ops.reuseport with real sockets: the steered group spreads new connections
over its own sockets, and a socket that joins the port later gets none of them."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from admin.startup import StartError, bind
from sidecar.config import HostPort
from sidecar.ops import reuseport

LOOPBACK = "127.0.0.1"


@contextmanager
def steered(count: int) -> Iterator[list[socket.socket]]:
    sockets = reuseport.group(socket.AF_INET, (LOOPBACK, 0), count, 256)
    assert sockets is not None, "this kernel refused SO_ATTACH_REUSEPORT_CBPF"
    try:
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def accepted(sockets: list[socket.socket], connections: int) -> list[int]:
    """Open ``connections`` to the group's port; answer how many each socket accepted."""
    port = sockets[0].getsockname()[1]
    clients = [socket.create_connection((LOOPBACK, port)) for _ in range(connections)]
    counts = []
    for sock in sockets:
        sock.setblocking(False)
        count = 0
        while True:
            try:
                conn, _ = sock.accept()
            except BlockingIOError:
                break
            conn.close()
            count += 1
        counts.append(count)
    for client in clients:
        client.close()
    return counts


def test_a_group_shares_one_port_and_spreads_connections_over_its_sockets() -> None:
    """200 connections to a group of 2 land on both sockets, neither taking under 60."""
    with steered(2) as sockets:
        ports = {sock.getsockname()[1] for sock in sockets}
        counts = accepted(sockets, 200)

    assert len(ports) == 1
    assert sum(counts) == 200
    assert min(counts) >= 60, counts


def test_a_socket_that_joins_the_port_later_gets_no_connection() -> None:
    """A server binding the port with SO_REUSEPORT afterwards (and no more) is never handed one."""
    with steered(2) as sockets:
        port = sockets[0].getsockname()[1]
        with socket.socket() as intruder:
            intruder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            intruder.bind((LOOPBACK, port))
            intruder.listen(256)
            counts = accepted([*sockets, intruder], 100)

    assert counts[2] == 0
    assert sum(counts[:2]) == 100


@pytest.mark.parametrize("reuse_port", [False, True], ids=["plain", "with SO_REUSEPORT"])
def test_a_port_another_program_listens_on_ends_the_start(reuse_port: bool) -> None:
    """Binding for 2 workers where anything listens already is a StartError naming the key."""
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, int(reuse_port))
        other.bind((LOOPBACK, 0))
        other.listen()
        listen = HostPort(LOOPBACK, other.getsockname()[1])
        with pytest.raises(StartError, match=r"^proxy\.listen: cannot listen on .*in use"):
            bind(listen, "proxy.listen", workers=2)


def test_two_workers_get_a_socket_each_on_the_one_port() -> None:
    """bind for 2 workers answers two different sockets, both on the port the kernel chose."""
    each = bind(HostPort(LOOPBACK, 0), "proxy.listen", workers=2)
    try:
        (first,), (second,) = each
        assert first is not second
        assert first.getsockname() == second.getsockname()
    finally:
        for sockets in each:
            for sock in sockets:
                sock.close()


def test_a_server_already_in_the_group_ends_the_group_s_bind() -> None:
    """One that bound the port with SO_REUSEPORT first (between probe and group) is refused."""
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind((LOOPBACK, 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(OSError, match="in use"):
            reuseport.group(socket.AF_INET, (LOOPBACK, port), 2, 16)
