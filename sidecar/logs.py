"""Structured logs: one JSON object a line, or plain text for a terminal.

Callers pass fields through ``extra={"fields": {...}}``; secrets never go in.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

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


def setup(config: LogConfig) -> None:
    handler = logging.StreamHandler(sys.stderr)
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
