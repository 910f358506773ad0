"""Small asyncio helpers shared by the wiring and the services."""

from __future__ import annotations

import asyncio


def resume_cancel() -> None:
    """Re-raise a cancellation that a Redis call swallowed.

    redis-py sends commands under `asyncio.wait_for`, which on Python < 3.12 drops a
    cancellation arriving just as the write completes (CPython gh-86296): the call returns
    normally and a task's `while True` loop would never stop. Call this after Redis calls
    in such loops; `Task.cancelling()` still tells that a cancellation was requested.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
