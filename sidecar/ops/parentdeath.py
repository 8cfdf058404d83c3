"""Child processes that end when the Keystile process that started them dies.

A worker or an embedded redis-server left running after its parent was
killed (``kill -9``, the OOM killer) would keep serving an old config and
keep its ports and its store. On Linux the kernel can signal a child when
its parent dies: ``prctl(PR_SET_PDEATHSIG)``. The signal is SIGTERM, so a
worker still finishes the requests it holds and Redis flushes its
append-only file.

The kernel sends it when the parent *thread* that forked the child ends,
not the whole process: Keystile starts its children only from the main
thread, never from an executor thread that may be retired first.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    return prctl


# Resolved once, before any fork: a child between fork and exec must not load libraries.
_PRCTL = _load_prctl()


def die_with_parent(parent: int, signum: int = signal.SIGTERM) -> None:
    """In a child: get ``signum`` when the parent ends; exit at once if it already has.

    ``parent`` is the pid the child was started by; a parent that died before
    the call would otherwise go unnoticed (the child has been re-parented).
    """
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signum)
    if os.getppid() != parent:
        os._exit(1)


def child_setup() -> Callable[[], None]:
    """A ``preexec_fn`` for ``subprocess.Popen``: the child ends with this process."""
    parent = os.getpid()
    return lambda: die_with_parent(parent)
