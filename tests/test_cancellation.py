"""sidecar.ops.cancellation: a background loop that dies says so at once, and a
cancellation redis-py swallowed is raised again."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from sidecar.ops.cancellation import background, raise_if_cancelled


async def test_a_background_task_that_dies_is_logged_with_its_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An error ending a background loop is an error line naming the task, as it happens."""

    async def loop() -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="keystile.tasks"):
        task = background(loop(), "keystile-test-loop")
        await asyncio.wait([task])
        await asyncio.sleep(0)  # done callbacks run on the next turn

    [record] = [r for r in caplog.records if r.name == "keystile.tasks"]
    assert record.fields["task"] == "keystile-test-loop"  # type: ignore[attr-defined]
    assert "boom" in record.fields["error"]  # type: ignore[attr-defined]


async def test_a_cancelled_background_task_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Cancelling a loop, as its owner does at shutdown, is no error."""
    task = background(asyncio.sleep(10), "keystile-test-sleep")
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.wait([task])
    await asyncio.sleep(0)

    assert not [r for r in caplog.records if r.name == "keystile.tasks"]


async def test_a_swallowed_cancellation_is_raised_again() -> None:
    """A task being cancelled whose CancelledError got lost still ends as cancelled."""

    async def loop() -> None:
        while True:
            with contextlib.suppress(asyncio.CancelledError):  # as a read timeout may
                await asyncio.sleep(10)
            raise_if_cancelled()

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.wait([task], timeout=2)

    assert task.cancelled()
