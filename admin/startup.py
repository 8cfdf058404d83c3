"""What a start settles before the store and the workers: the operator's one-line
``StartError``, and both listening sockets, bound once.

Bound once, in the process that starts (the supervisor with ``--workers N``), and
handed to the workers, so that only Keystile's own workers share a port.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sidecar.config import Config, HostPort


class StartError(Exception):
    """Keystile cannot start; the message is for the operator, one line."""


#: Connections the kernel queues for a listener before its workers accept them.
BACKLOG = 128


@dataclass(frozen=True)
class Listeners:
    """The bound, listening sockets of both listeners (a host may resolve to several)."""

    proxy: list[socket.socket]
    admin: list[socket.socket]

    def close(self) -> None:
        for sock in self.proxy + self.admin:
            sock.close()


@contextmanager
def bound(config: Config) -> Iterator[Listeners]:
    """Bind both listeners in this process, closed on exit; a taken port names its key."""
    proxy = bind(config.proxy.listen, "proxy.listen")
    try:
        admin = bind(config.admin.listen, "admin.listen")
    except StartError:
        Listeners(proxy, []).close()
        raise
    listeners = Listeners(proxy, admin)
    try:
        yield listeners
    finally:
        listeners.close()


def bind(listen: HostPort, key: str) -> list[socket.socket]:
    """Listening sockets on every address of ``listen``.

    ``SO_REUSEADDR`` only, so a restart need not wait out TIME_WAIT; never
    ``SO_REUSEPORT``, with which a second server (another Keystile with
    another store) would be let onto the port and handed part of its traffic.
    """
    bound: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in _addresses(listen):
            sock = socket.socket(family, kind, proto)
            bound.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:  # as asyncio does: "::" must not also claim IPv4
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(BACKLOG)
    except OSError as exc:
        for sock in bound:
            sock.close()
        raise StartError(f"{key}: cannot listen on {listen}: {exc.strerror}") from None
    return bound


#: One getaddrinfo answer: family, type, protocol, canonical name, address.
AddressInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[Any, ...]]


def _addresses(listen: HostPort) -> list[AddressInfo]:
    infos = socket.getaddrinfo(
        listen.host, listen.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    return list(dict.fromkeys(infos))  # getaddrinfo may repeat an address
