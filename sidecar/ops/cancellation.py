"""Keeping a background task's cancellation a cancellation, around redis-py's calls.

redis-py's reads can swallow a cancellation (it lands in their read timeout)
or turn it into a connection error; the task stays marked as cancelling. A
loop that logged the error and slept on would never end, and its owner's
shutdown would wait for ever, so every background loop calls
``raise_if_cancelled`` before each wait and after each error.
"""

from __future__ import annotations

import asyncio


def raise_if_cancelled(cause: BaseException | None = None) -> None:
    """Raise ``CancelledError`` (from ``cause``) if the current task is being cancelled."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from cause
