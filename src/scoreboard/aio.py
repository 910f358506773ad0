"""Small asyncio helpers shared by the wiring and the services."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable
from typing import Any


async def stop_task(task: asyncio.Task[Any] | None) -> None:
    """Cancel a background task (None: nothing to stop) and wait until it has ended."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


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


class MethodProxy:
    """A proxy of an object whose coroutine methods each go through `around(name, call)`
    (a span, an error count); everything else passes through. Each method is wrapped once,
    on first use, and kept: later calls cost no more than the wrapper itself."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name.startswith("_") or not inspect.iscoroutinefunction(value):
            return value
        wrapped = self._around(name, value)
        setattr(self, name, wrapped)
        return wrapped

    def _around(
        self, name: str, call: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        raise NotImplementedError
