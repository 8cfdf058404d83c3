"""``keystile serve --workers N``: one supervisor, N worker processes on shared ports.

The supervisor binds both listening sockets once (``admin.startup.bind``: a
taken port ends the start with one line naming its key), opens the store
once (checks ``redis.url`` answers, or starts the private embedded server,
whose Unix socket every worker then uses), then starts N workers and hands
each its own sockets (multiprocessing passes them as descriptors): one
socket a worker on each port, new connections spread over them, and nothing
outside Keystile handed any (``sidecar.ops.reuseport``). Each worker has its
own event loop (uvloop where installed), cache, argon2 pool and invalidation
listener.

Every worker, and the embedded server, gets SIGTERM from the kernel when the
supervisor dies, even by ``kill -9`` (``sidecar.ops.parentdeath``), so no orphan
keeps serving the ports or the store.

SIGTERM or SIGINT to the supervisor stops every worker with SIGTERM (each
finishes its requests and closes its resources), then the embedded server.
A worker that dies in its first seconds means the start failed (its own
message names the key): the others are stopped and ``serve`` exits non-zero.
A worker that dies later is replaced. SIGHUP to the supervisor is passed on
to every worker, which reloads its listeners' certificates; each worker is
started with SIGHUP blocked, so one that arrives before it can reload waits.

The workers' metrics meet in a private directory the supervisor makes at each
start (``shared_metrics``): every scrape, whichever worker answers it, reports
the sum over all workers, dead ones included, so no counter goes down.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import replace
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client.multiprocess import mark_process_dead

from admin import serve as runtime
from admin.startup import Listeners, StartError, bound
from sidecar.config import Config
from sidecar.ops import embedded, logs, parentdeath
from sidecar.ops.metrics import shared_values_without_getpid
from sidecar.verification.hashing import cores

log = logging.getLogger("keystile.workers")
T = TypeVar("T")

#: A worker that exits sooner than this after its start failed to start.
START_WINDOW = 5.0
#: Seconds a worker gets to finish its requests after SIGTERM.
STOP_WAIT = 20.0


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop where it is installed, else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:  # not on this platform (see pyproject.toml): asyncio's loop is fine
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


@contextmanager
def store_url(config: Config) -> Iterator[str]:
    """The store every worker uses: ``redis.url`` once checked, or the embedded server's."""
    if (configured := runtime.configured_url(config)) is not None:
        url, key = configured
        run(runtime._check_reachable(url, config, key))
        yield url
        return
    server = embedded.EmbeddedRedis(config.redis.data_dir, config.redis.server_binary)
    try:
        server.start()
    except embedded.EmbeddedError as exc:
        raise StartError(str(exc)) from None
    try:
        run(runtime._check_reachable(server.url, config, "redis.server_binary"))
        yield server.url
    finally:
        server.stop()


def share_of_cores(config: Config, count: int) -> Config:
    """The config of one of ``count`` workers: with ``hashing.threads = 0`` the
    workers split the cores between their argon2 pools, so the machine runs at
    most one argon2 per core (and holds at most that many argon2 buffers)."""
    if config.hashing.threads:
        return config
    threads = max(1, cores() // count)
    return replace(config, hashing=replace(config.hashing, threads=threads))


@contextmanager
def shared_metrics() -> Iterator[Path]:
    """A new directory, this user's only, for the workers' metric files; removed at the end.

    prometheus_client picks where its values live when it is imported, from
    ``PROMETHEUS_MULTIPROC_DIR``: set here, it is in the environment of each
    worker (a fresh interpreter) before that worker imports it. New at every
    start, so no earlier run's counts are added in.
    """
    try:
        path = Path(tempfile.mkdtemp(prefix="keystile-metrics-"))
    except OSError as exc:
        where = tempfile.gettempdir()
        raise StartError(
            f"cannot make the workers' metrics directory in {where} (set TMPDIR): {exc.strerror}"
        ) from None
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    try:
        yield path
    finally:
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]
        shutil.rmtree(path, ignore_errors=True)


def worker_main(
    config: Config, url: str, listeners: Listeners, index: int, parent: int, metrics: Path
) -> None:
    """Body of one worker process (started with ``spawn``: a fresh interpreter)."""
    parentdeath.die_with_parent(parent)
    logs.setup(config.log)
    shared_values_without_getpid()
    try:
        serving = runtime.serve_on(
            config, url, listeners, warm_index=index == 0, shared_metrics=metrics
        )
        run(serving)
    except StartError as exc:
        print(f"keystile: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


class Supervisor:
    def __init__(
        self,
        config: Config,
        url: str,
        listeners: list[Listeners],
        count: int,
        stopping: threading.Event,
        metrics: Path,
        reloading: threading.Event,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.url = url
        self.listeners = listeners
        self.count = count
        #: Set by the signal handlers ``supervise`` installs, and by ``stop``.
        self.stopping = stopping
        #: Set by the SIGHUP handler; ``watch`` passes the signal on.
        self.reloading = reloading
        self._context = multiprocessing.get_context("spawn")
        #: process -> (its index, monotonic start time)
        self.workers: dict[BaseProcess, tuple[int, float]] = {}

    def start_one(self, index: int) -> None:
        """Start worker ``index``; on the main thread only (see sidecar.ops.parentdeath)."""
        config = share_of_cores(self.config, self.count)
        process = self._context.Process(
            target=worker_main,
            args=(config, self.url, self.listeners[index], index, os.getpid(), self.metrics),
            name=f"keystile-worker-{index}",
        )
        # Blocked across the start, inherited by the worker (spawn keeps the signal
        # mask): SIGHUP's default would end a worker not yet able to reload.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
        self.workers[process] = (index, time.monotonic())

    def watch(self) -> int:
        """Keep N workers running until signalled; answer the exit code."""
        for index in range(self.count):
            self.start_one(index)
        log.info("workers started", extra={"fields": {"workers": self.count}})
        while not self.stopping.is_set():
            wait([p.sentinel for p in self.workers], timeout=0.2)
            self._pass_on_reload()
            for process, (index, started) in list(self.workers.items()):
                if process.is_alive() or self.stopping.is_set():
                    continue
                del self.workers[process]
                # Its counters stay in the sum; its gauges leave it.
                mark_process_dead(process.pid, str(self.metrics))
                if time.monotonic() - started < START_WINDOW:
                    self.stop()
                    return 1
                log.warning(
                    "worker died; starting another",
                    extra={"fields": {"worker": process.name, "exitcode": process.exitcode}},
                )
                # Same index: worker 0's successor warms the admin index again.
                self.start_one(index)
        self.stop()
        return 0

    def _pass_on_reload(self) -> None:
        if not self.reloading.is_set():
            return
        self.reloading.clear()
        for process in self.workers:
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signal.SIGHUP)

    def stop(self) -> None:
        """SIGTERM every worker, wait for each, kill the ones that do not stop."""
        self.stopping.set()
        for process in self.workers:
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + STOP_WAIT
        for process in self.workers:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()


def supervise(config: Config, count: int) -> int:
    """``keystile serve --workers N`` for N > 1; answer the exit code."""
    stopping = threading.Event()
    # Before the store starts, so that a signal meanwhile still stops it cleanly.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, frame: stopping.set())
    reloading = threading.Event()
    signal.signal(signal.SIGHUP, lambda signum, frame: reloading.set())
    runtime.load_tls(config)  # a certificate that cannot be used ends the start, once
    with bound(config, count) as listeners, shared_metrics() as metrics, store_url(config) as url:
        if stopping.is_set():
            return 0
        return Supervisor(config, url, listeners, count, stopping, metrics, reloading).watch()
