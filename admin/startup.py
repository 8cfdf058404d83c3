"""What a start settles before the store and the workers: the operator's one-line
``StartError``, and both listeners' sockets, bound once.

Bound once, in the process that starts (the supervisor with ``--workers N``), and
handed to the workers, so that only Keystile's own workers share a port. With
several workers each gets a socket of its own on the port, so each has its own
accept queue and new connections are spread over them
(``sidecar.ops.reuseport``, which also keeps other processes out).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sidecar.config import Config, HostPort
from sidecar.ops import reuseport


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
def bound(config: Config, workers: int = 1) -> Iterator[list[Listeners]]:
    """Bind both listeners in this process, closed on exit; a taken port names its key.

    Answers each worker's ``Listeners``.
    """
    proxy = bind(config.proxy.listen, "proxy.listen", workers)
    try:
        admin = bind(config.admin.listen, "admin.listen", workers)
    except StartError:
        _close(proxy)
        raise
    try:
        yield [Listeners(p, a) for p, a in zip(proxy, admin, strict=True)]
    finally:
        _close(proxy + admin)


def bind(listen: HostPort, key: str, workers: int = 1) -> list[list[socket.socket]]:
    """Each worker's listening sockets, one on every address of ``listen``.

    Each socket gets ``SO_REUSEADDR``, so a restart need not wait out TIME_WAIT.
    One worker gets one plain socket an address, which no other server can
    bind, with or without ``SO_REUSEPORT`` (with which a second Keystile, with
    another store, would be let onto the port and handed part of its traffic).
    """
    each: list[list[socket.socket]] = [[] for _ in range(workers)]
    try:
        for family, kind, proto, _, address in _addresses(listen):
            socks = _for_workers(family, kind, proto, address, workers)
            for sockets, sock in zip(each, socks, strict=True):
                sockets.append(sock)
    except OSError as exc:
        _close(each)
        raise StartError(f"{key}: cannot listen on {listen}: {exc.strerror}") from None
    return each


def _for_workers(
    family: int, kind: int, proto: int, address: tuple[Any, ...], workers: int
) -> list[socket.socket]:
    """A socket a worker on ``address``: a steered group of their own, or one they share.

    The plain bind comes first, even for a group: it fails while anything at
    all listens on the address, as a group's own binds would not.
    """
    plain = _plain(family, kind, proto, address)
    if workers == 1:
        return [plain]
    address = (address[0], plain.getsockname()[1], *address[2:])  # port 0: the kernel's choice
    plain.close()
    group = reuseport.group(family, address, workers, BACKLOG)
    return group or [_plain(family, kind, proto, address)] * workers


def _plain(family: int, kind: int, proto: int, address: tuple[Any, ...]) -> socket.socket:
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:  # as asyncio does: "::" must not also claim IPv4
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def _close(each: list[list[socket.socket]]) -> None:
    for sockets in each:
        for sock in sockets:
            sock.close()


#: One getaddrinfo answer: family, type, protocol, canonical name, address.
AddressInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[Any, ...]]


def _addresses(listen: HostPort) -> list[AddressInfo]:
    infos = socket.getaddrinfo(
        listen.host, listen.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    return list(dict.fromkeys(infos))  # getaddrinfo may repeat an address
