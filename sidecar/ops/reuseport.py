"""One listening socket per worker, on one port, that nothing else can take traffic from.

Workers that share one listening socket share one accept queue, and whichever
wakes first accepts every connection waiting: under a burst one worker may take
30 of 32 keep-alive connections while the other idles, which halves what a
2-core pod serves and doubles its tail once anything else wants the CPU.
``SO_REUSEPORT`` gives each worker a queue of its own and spreads connections
over them, but it also lets any other process of the same user bind the port
and silently take a share of the traffic.

So the group is steered: a classic BPF program (``SO_ATTACH_REUSEPORT_CBPF``,
Linux 4.5+) picks, for each new connection, a random one of the first
``count`` sockets of the group, which are ours (bound and listening before the
program is attached). A server that binds the port with ``SO_REUSEPORT`` later
sits past them and is never picked. Before the group is bound, a plain probe
bind checks that nothing at all listens on the address, so a second
Keystile's start still fails with "address in use" (admin/startup.py); and
once it is bound, the kernel's table of listening sockets must show ours
alone on the address, so a server that bound it between the probe and the
group (and would sit among the first ``count``) ends the start too.

What this does not stop is a program of the same user that sets out to take
the port: it can join the group and attach a program of its own, which the
kernel lets replace ours. A process of the same user can as well read or
trace Keystile's own memory; keeping it out takes another user.

Without the kernel support, ``group`` answers None and the caller falls back
to one shared socket.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct
from pathlib import Path
from typing import Any

#: <asm-generic/socket.h>; Python's socket module does not name it.
SO_ATTACH_REUSEPORT_CBPF = 51
#: <linux/filter.h>: classic BPF opcodes, and the ancillary load of a random number.
_LD_W_ABS = 0x00 | 0x00 | 0x20  # BPF_LD | BPF_W | BPF_ABS
_ALU_MOD_K = 0x04 | 0x90 | 0x00  # BPF_ALU | BPF_MOD | BPF_K
_RET_A = 0x06 | 0x10  # BPF_RET | BPF_A
_SKF_AD_RANDOM = -0x1000 + 56  # SKF_AD_OFF + SKF_AD_RANDOM, as the u32 the kernel reads


class _Instruction(ctypes.Structure):
    _fields_ = (
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    )


class _Program(ctypes.Structure):
    _fields_ = (("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_Instruction)))


def steering_program(count: int) -> list[tuple[int, int]]:
    """``A = random(); A %= count; return A``: the (opcode, k) of each instruction."""
    return [(_LD_W_ABS, _SKF_AD_RANDOM & 0xFFFFFFFF), (_ALU_MOD_K, count), (_RET_A, 0)]


def group(
    family: int, address: tuple[Any, ...], count: int, backlog: int
) -> list[socket.socket] | None:
    """``count`` listening sockets on ``address``, steered as above; None without kernel support.

    Raises ``OSError`` when ``address`` cannot be bound (the caller names its key).
    """
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            address = (address[0], sock.getsockname()[1], *address[2:])  # port 0: the first's
        if not _attach(sockets[0], count):
            _close(sockets)
            return None
        if (listening := _listening(family, address)) is not None and listening > count:
            raise OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE))
    except BaseException:
        _close(sockets)
        raise
    return sockets


def _attach(sock: socket.socket, count: int) -> bool:
    instructions = steering_program(count)
    code = (_Instruction * len(instructions))(*(_Instruction(o, 0, 0, k) for o, k in instructions))
    program = _Program(len(instructions), ctypes.cast(code, ctypes.POINTER(_Instruction)))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, bytes(program))
    except OSError:  # not Linux, or a kernel older than 4.5: one shared queue instead
        return False
    return True


def _listening(family: int, address: tuple[Any, ...]) -> int | None:
    """How many sockets listen on ``address`` in this network namespace (/proc/net/tcp*);
    None where the table cannot be read."""
    table = "tcp6" if family == socket.AF_INET6 else "tcp"
    packed = socket.inet_pton(family, address[0])
    # The kernel prints each 32-bit word of the address in host byte order.
    words = struct.unpack(f"={len(packed) // 4}I", packed)
    local = "".join(f"{word:08X}" for word in words) + f":{address[1]:04X}"
    try:
        lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
    except OSError:
        return None
    return sum(1 for line in lines if line.split()[1:4:2] == [local, "0A"])  # 0A: LISTEN


def _close(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()
