"""Background loops: their cancellation kept a cancellation, their death never silent.

redis-py's reads can swallow a cancellation (it lands in their read timeout)
or turn it into a connection error; the task stays marked as cancelling. A
loop that logged the error and slept on would never end, and its owner's
shutdown would wait for ever, so every background loop calls
``raise_if_cancelled`` before each wait and after each error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager, suppress
from typing import Any

log = logging.getLogger("keystile.tasks")


def raise_if_cancelled(cause: BaseException | None = None) -> None:
    """Raise ``CancelledError`` (from ``cause``) if the current task is being cancelled."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from cause


def background(coroutine: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
    """A background loop's task, whose death by any error is logged the moment it happens.

    Such a loop runs until its owner cancels it; one that ends by an error
    nobody looks at (until the shutdown, which gathers its result) would leave
    its work silently undone: acknowledgements, flushes, deliveries.
    """
    task = asyncio.create_task(coroutine, name=name)
    task.add_done_callback(_log_death)
    return task


def _log_death(task: asyncio.Task[Any]) -> None:
    if task.cancelled() or task.exception() is None:
        return
    error = task.exception()
    fields = {"task": task.get_name(), "error": repr(error)}
    log.error("background task died", exc_info=error, extra={"fields": fields})


@asynccontextmanager
async def running(coroutine: Coroutine[Any, Any, Any] | None, name: str) -> AsyncIterator[None]:
    """``coroutine`` as a ``background`` task while the block runs (none for None),
    cancelled and awaited when it ends."""
    task = background(coroutine, name) if coroutine is not None else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
