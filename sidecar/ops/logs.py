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
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any, TextIO, cast

from sidecar.config import LogConfig

#: One encoder for every line: ``json.dumps(default=...)`` builds a new one per call.
_ENCODER = json.JSONEncoder(default=str)
#: And ``JSONEncoder.encode`` still builds a C encoder per call, with a dict to
#: catch cycles: this one is built once. Our lines are flat dicts of our own
#: values, never cyclic; about 4 us less per access line (bench neighbour).
_C_ENCODER = (
    None
    if c_make_encoder is None
    else c_make_encoder(None, str, encode_basestring_ascii, None, ": ", ", ", False, False, True)
)


def _encode(entry: dict[str, Any]) -> str:
    if _C_ENCODER is None:  # an interpreter without the _json accelerator
        return _ENCODER.encode(entry)
    return "".join(_C_ENCODER(entry, 0))


class LineFormatter(logging.Formatter):
    """A formatter that can also build a line without a ``LogRecord`` (``HotLogger``)."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, "fields", {})
        if record.exc_info:
            fields = {**fields, "exc": self.formatException(record.exc_info)}
        level, message = record.levelname.lower(), record.getMessage()
        return self.line(record.created, level, record.name, message, fields)

    def line(
        self, created: float, level: str, name: str, message: str, fields: dict[str, Any]
    ) -> str:
        raise NotImplementedError


#: The keys every line starts with, in this order.
_HEAD_KEYS = frozenset({"ts", "level", "logger", "msg"})
#: Most distinct (level, logger, message) heads kept encoded: ours are a few dozen.
_MOST_HEADS = 512


class JsonFormatter(LineFormatter):
    #: (second, its text): strftime once a second, not once a line; one tuple so
    #: a thread never reads one second's number with another's text.
    _stamp = (-1, "")

    def __init__(self) -> None:
        super().__init__()
        #: (level, logger, message) -> its encoded part of a line, which repeats on
        #: every access line: encoded once, 1.2 us less a line (of 2.9).
        self._heads: dict[tuple[str, str, str], str] = {}

    def line(
        self, created: float, level: str, name: str, message: str, fields: dict[str, Any]
    ) -> str:
        second, stamp = self._stamp
        if int(created) != second:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(created))
            self._stamp = (int(created), stamp)
        millis = int((created - int(created)) * 1000)
        ts = f"{stamp}.{millis:03d}Z"
        if not _HEAD_KEYS.isdisjoint(fields):  # a field would replace a head key in place
            entry = {"ts": ts, "level": level, "logger": name, "msg": message}
            entry.update(fields)
            return _encode(entry)
        head = self._heads.get((level, name, message)) or self._head(level, name, message)
        rest = _encode(fields)[1:] if fields else "}"
        return '{"ts": "' + ts + '", ' + head + (", " + rest if fields else rest)

    def _head(self, level: str, name: str, message: str) -> str:
        head = _encode({"level": level, "logger": name, "msg": message})[1:-1]
        if len(self._heads) < _MOST_HEADS:
            self._heads[(level, name, message)] = head
        return head


class TextFormatter(LineFormatter):
    def line(
        self, created: float, level: str, name: str, message: str, fields: dict[str, Any]
    ) -> str:
        extra = " ".join(f"{k}={v}" for k, v in fields.items() if k != "exc")
        text = f"{level:7} {name}: {message} {extra}".rstrip()
        return text + "\n" + fields["exc"] if "exc" in fields else text


#: A line not yet formatted: (created, level, logger name, message, fields).
Entry = tuple[float, str, str, str, dict[str, Any]]


class BatchingHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Lines written in batches, at most ``interval`` seconds late.

    One write per request to stderr is a syscall per request; batching them, as
    nginx's ``access_log ... buffer= flush=`` does, keeps the lines and their
    order and drops the syscalls. Warnings and errors go out at once, with
    whatever is pending before them; ``logging.shutdown`` (at exit) flushes.

    ``HotLogger`` queues its lines unformatted (``write_entry``): they are
    formatted together at the flush, in one tight loop off the request path,
    which costs less CPU per line than formatting each between two requests'
    socket calls (bench/cpu_cost.py), and keeps it out of the request's latency.
    """

    def __init__(self, stream: TextIO, interval: float = 0.2, most: int = 512) -> None:
        super().__init__(stream)
        self.interval = interval
        self.most = most
        self._pending: list[str | Entry] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.write_line(line, urgent=record.levelno >= logging.WARNING)

    def write_line(self, line: str | Entry, urgent: bool = False) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._pending.append(line)
            first = len(self._pending) == 1
        if urgent or len(self._pending) >= self.most:
            self.flush()
        elif first and not _flush_later(self.flush, self.interval):
            self.flush()  # no event loop in this thread to flush it later

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            if not self._pending:
                return
            pending, self._pending = self._pending, []
            text = "\n".join(self._text(pending)) + "\n"
            try:
                self.stream.write(text)
                self.stream.flush()
            except (OSError, ValueError):
                pass  # stderr gone (closed pipe): nothing left to tell

    def _text(self, pending: list[str | Entry]) -> list[str]:
        formatter = cast(LineFormatter, self.formatter)
        return [line if isinstance(line, str) else formatter.line(*line) for line in pending]


def _flush_later(flush: Callable[[], None], delay: float) -> bool:
    try:
        asyncio.get_running_loop().call_later(delay, flush)
    except RuntimeError:
        return False
    return True


class HotLogger:
    """INFO lines for a path taken on every request, at a fraction of logging's cost.

    ``Logger.info`` builds a ``LogRecord`` (about twenty attributes) and walks
    the logger tree, its filters and handlers: about 20 us per access line on
    the proxy's hot path (measured by leaving it out). When ``setup``
    installed the only handler and nobody added a filter or handler since, the
    line's parts are queued on that handler directly, and its own formatter
    builds the line at the flush: the same text, in the same order. Otherwise
    (tests' ``caplog``, an application embedding Keystile's apps) it goes
    through ``logging``. ``fields`` must not change after the call.
    """

    def __init__(self, name: str) -> None:
        self.logger = logging.getLogger(name)

    def info(self, message: str, fields: dict[str, Any]) -> None:
        handler = _direct_handler(self.logger)
        if handler is None:
            self.logger.info(message, extra={"fields": fields})
            return
        handler.write_line((time.time(), "info", self.logger.name, message, fields))


def _direct_handler(logger: logging.Logger) -> BatchingHandler | None:
    """The handler ``setup`` installed, when it is the only place an INFO line can go."""
    root = logging.root
    if len(root.handlers) != 1 or logger.handlers or logger.filters or root.filters:
        return None
    handler = root.handlers[0]
    if not isinstance(handler, BatchingHandler) or handler.filters or handler.level > logging.INFO:
        return None
    if not isinstance(handler.formatter, LineFormatter) or not logger.propagate:
        return None
    return handler if logger.isEnabledFor(logging.INFO) else None


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
    # aiohttp's own access log is replaced by ours (sidecar.proxy.accesslog).
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
