"""Structured logs: the batching handler keeps every line, in order, at most a beat late."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sidecar.ops.logs import BatchingHandler, HotLogger, JsonFormatter


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, io.StringIO, BatchingHandler]]:
    stream = io.StringIO()
    handler = BatchingHandler(stream, interval=0.05)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("keystile.test-logs")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    yield log, stream, handler
    log.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_lines_are_batched_then_written_in_order(
    logger: tuple[logging.Logger, io.StringIO, BatchingHandler],
) -> None:
    """Info lines are held for one write a moment later, in the order they were logged."""
    log, stream, _ = logger
    for n in range(3):
        log.info("request", extra={"fields": {"n": n}})
    assert stream.getvalue() == ""  # held: one write for the batch, not one per line
    await asyncio.sleep(0.15)
    assert [line["n"] for line in lines(stream)] == [0, 1, 2]


async def test_a_warning_goes_out_at_once_with_what_came_before(
    logger: tuple[logging.Logger, io.StringIO, BatchingHandler],
) -> None:
    """A warning is written at once, with the info lines held before it."""
    log, stream, _ = logger
    log.info("first")
    log.warning("trouble")
    assert [line["msg"] for line in lines(stream)] == ["first", "trouble"]


def test_without_an_event_loop_every_line_is_written_at_once(
    logger: tuple[logging.Logger, io.StringIO, BatchingHandler],
) -> None:
    """A thread with no loop (the argon2 pool, start-up) has no timer to wait for."""
    log, stream, _ = logger
    log.info("from a thread")
    assert [line["msg"] for line in lines(stream)] == ["from a thread"]


async def test_shutdown_flushes_what_is_pending(
    logger: tuple[logging.Logger, io.StringIO, BatchingHandler],
) -> None:
    """Flushing at shutdown writes the lines still held."""
    log, stream, handler = logger
    log.info("last words")
    handler.flush()  # what logging.shutdown() does at exit
    assert [line["msg"] for line in lines(stream)] == ["last words"]


@pytest.fixture
def root_only() -> Iterator[io.StringIO]:
    """The root logger as ``logs.setup`` leaves it: one batching JSON handler."""
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    stream = io.StringIO()
    handler = BatchingHandler(stream)
    formatter = JsonFormatter()
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    yield stream
    handler.flush()
    root.handlers[:] = saved
    root.setLevel(level)


def test_hot_line_is_the_line_logging_would_write(root_only: io.StringIO) -> None:
    """The access log's direct path writes what ``Logger.info`` writes, field for field."""
    fields = {"status": 200, "path": '/a"b', "reason": None}
    HotLogger("keystile.test-hot").info("request", fields)
    logging.getLogger("keystile.test-hot").info("request", extra={"fields": fields})
    logging.getLogger().handlers[0].flush()
    hot, slow = lines(root_only)
    assert hot.keys() == slow.keys() == {"ts", "level", "logger", "msg", "status", "path", "reason"}
    assert {k: v for k, v in hot.items() if k != "ts"} == {
        k: v for k, v in slow.items() if k != "ts"
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(hot["ts"]))


def test_hot_line_goes_through_logging_when_someone_listens(
    root_only: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    """With another handler on the root (here pytest's), the line is a real log record."""
    with caplog.at_level(logging.INFO):
        HotLogger("keystile.test-hot").info("request", {"status": 200})
    assert [(r.name, r.getMessage()) for r in caplog.records] == [("keystile.test-hot", "request")]


def test_hot_line_respects_the_level(root_only: io.StringIO) -> None:
    """The access log's direct path writes nothing below the root logger's level."""
    logging.getLogger().setLevel(logging.WARNING)
    HotLogger("keystile.test-hot").info("request", {"status": 200})
    logging.getLogger().handlers[0].flush()
    assert root_only.getvalue() == ""


@pytest.mark.parametrize(
    "fields",
    [{}, {"path": '/a"b\u00e9', "user": None, "status": 200}, {"msg": "replaced", "n": 1}],
    ids=["none", "escaped", "a field named like a head key"],
)
def test_a_json_line_is_the_encoding_of_its_head_and_fields_in_order(
    fields: dict[str, Any],
) -> None:
    """ts, level, logger, msg first, then the fields, as json.dumps writes that object."""
    formatter = JsonFormatter()
    formatter.converter = time.gmtime

    first = formatter.line(0.5, "info", "keystile.access", 'request "q"', fields)
    line = formatter.line(0.5, "info", "keystile.access", 'request "q"', fields)  # head cached

    assert line == first
    entry = {"ts": "1970-01-01T00:00:00.500Z", "level": "info", "logger": "keystile.access"}
    entry["msg"] = 'request "q"'
    entry.update(fields)
    assert line == json.dumps(entry)
