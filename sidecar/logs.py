"""Structured logs: one JSON object a line, or plain text for a terminal.

Callers pass fields through ``extra={"fields": {...}}``; secrets never go in.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from sidecar.config import LogConfig


class JsonFormatter(logging.Formatter):
    #: (second, its text): strftime once a second, not once a line; one tuple so
    #: a thread never reads one second's number with another's text.
    _stamp = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        second, stamp = self._stamp
        if int(record.created) != second:
            stamp = self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
            self._stamp = (int(record.created), stamp)
        entry: dict[str, Any] = {
            "ts": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", {})
        extra = " ".join(f"{k}={v}" for k, v in fields.items())
        line = f"{record.levelname.lower():7} {record.name}: {record.getMessage()} {extra}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line.rstrip()


class BatchingHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Lines written in batches, at most ``interval`` seconds late.

    One write per request to stderr is a syscall per request; batching them, as
    nginx's ``access_log ... buffer= flush=`` does, keeps the lines and their
    order and drops the syscalls. Warnings and errors go out at once, with
    whatever is pending before them; ``logging.shutdown`` (at exit) flushes.
    """

    def __init__(self, stream: TextIO, interval: float = 0.2, most: int = 512) -> None:
        super().__init__(stream)
        self.interval = interval
        self.most = most
        self._pending: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        with self.lock:  # type: ignore[union-attr]
            self._pending.append(line)
            first = len(self._pending) == 1
        if record.levelno >= logging.WARNING or len(self._pending) >= self.most:
            self.flush()
        elif first and not _flush_later(self.flush, self.interval):
            self.flush()  # no event loop in this thread to flush it later

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            if not self._pending:
                return
            text, self._pending = "\n".join(self._pending) + "\n", []
            try:
                self.stream.write(text)
                self.stream.flush()
            except (OSError, ValueError):
                pass  # stderr gone (closed pipe): nothing left to tell


def _flush_later(flush: Callable[[], None], delay: float) -> bool:
    try:
        asyncio.get_running_loop().call_later(delay, flush)
    except RuntimeError:
        return False
    return True


def setup(config: LogConfig) -> None:
    handler = BatchingHandler(sys.stderr)
    formatter = JsonFormatter() if config.format == "json" else TextFormatter()
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.level.upper())
    # Neither formatter prints the process, thread or task of a record; without
    # these, logging skips a getpid() syscall and three lookups for every line.
    logging.logProcesses = logging.logThreads = logging.logMultiprocessing = False
    # aiohttp's own access log is replaced by ours (sidecar.accesslog).
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
