"""Structured logs: the batching handler keeps every line, in order, at most a beat late."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from sidecar.logs import BatchingHandler, JsonFormatter


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
    log, stream, _ = logger
    for n in range(3):
        log.info("request", extra={"fields": {"n": n}})
    assert stream.getvalue() == ""  # held: one write for the batch, not one per line
    await asyncio.sleep(0.15)
    assert [line["n"] for line in lines(stream)] == [0, 1, 2]


async def test_a_warning_goes_out_at_once_with_what_came_before(
    logger: tuple[logging.Logger, io.StringIO, BatchingHandler],
) -> None:
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
    log, stream, handler = logger
    log.info("last words")
    handler.flush()  # what logging.shutdown() does at exit
    assert [line["msg"] for line in lines(stream)] == ["last words"]
