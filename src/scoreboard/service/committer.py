"""Group commit: concurrent score events share one transaction.

Requests queue their command and wait; one worker drains the queue for up to `window` seconds
or `max_batch` commands, commits them in one `Store.record_events` call, then answers each
request. Every answer comes after the commit, so a 2xx is durable; one fsync serves many events.

A request waits at most `timeout` (less when its budget has less left, `scoreboard.deadline`)
for its answer, including the time queued behind a batch that is itself waiting on a database
that does not answer: then it gets `ServiceUnavailable`, and its command, if no batch has
taken it yet, is dropped, never written after its 503. (One already in a batch in flight may
still commit, as with any timeout: a 503 means "not acknowledged"; retry with the same
Idempotency-Key.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from scoreboard.deadline import bounded
from scoreboard.domain.errors import ServiceUnavailable
from scoreboard.store.base import ScoreCommand, ScoreOutcome, Store

log = logging.getLogger(__name__)

_Pending = tuple[ScoreCommand, asyncio.Future[ScoreOutcome]]
_STOP = None  # queued by close(): everything before it is committed, then the worker ends


class GroupCommitter:
    def __init__(
        self,
        store: Store,
        *,
        window_seconds: float = 0.002,
        max_batch: int = 256,
        on_batch: Callable[[int], None] | None = None,
        timeout: float = 2.0,
    ) -> None:
        self._store = store
        self._timeout = timeout
        self._window = window_seconds
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._on_batch = on_batch

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="group-committer")

    async def close(self) -> None:
        """Stop taking work; commit everything already submitted, then stop."""
        if self._task is None:
            return
        self._closing = True
        self._queue.put_nowait(_STOP)
        await asyncio.wait({self._task})
        self._task = None

    async def submit(self, command: ScoreCommand) -> ScoreOutcome:
        if self._task is None or self._task.done() or self._closing:
            raise ServiceUnavailable("The writer is not running.")
        timeout = bounded(self._timeout)
        if timeout <= 0:
            raise ServiceUnavailable("The database did not answer in time; retry later.")
        future: asyncio.Future[ScoreOutcome] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((command, future))
        try:
            # Shielded: a client that disconnects does not cancel a commit others share.
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            if future.done() and not future.cancelled() and future.exception() is None:
                return future.result()  # committed at the very moment of the timeout
            future.cancel()  # a batch not yet formed skips it (`_commit`)
            raise ServiceUnavailable("The database did not answer in time; retry later.") from None

    def _take(self, item: _Pending | None, batch: list[_Pending]) -> bool:
        """Add a queued item to the batch; False when it is the stop marker."""
        if item is _STOP:
            return False
        batch.append(item)
        return True

    async def _gather(self) -> tuple[list[_Pending], bool]:
        """The next batch, and whether to keep running after it."""
        batch: list[_Pending] = []
        if not self._take(await self._queue.get(), batch):
            return batch, False
        deadline = time.monotonic() + self._window
        while len(batch) < self._max_batch:
            while not self._queue.empty() and len(batch) < self._max_batch:
                if not self._take(self._queue.get_nowait(), batch):
                    return batch, False
            remaining = deadline - time.monotonic()
            if remaining <= 0 or len(batch) >= self._max_batch:
                break
            try:
                item = await asyncio.wait_for(self._queue.get(), remaining)
            except TimeoutError:
                break
            if not self._take(item, batch):
                return batch, False
        return batch, True

    async def _run(self) -> None:
        running = True
        while running:
            batch, running = await self._gather()
            await self._commit(batch)

    async def _commit(self, batch: list[_Pending]) -> None:
        batch = [(command, future) for command, future in batch if not future.done()]
        if not batch:
            return
        try:
            outcomes = await self._store.record_events([command for command, _ in batch])
        except ServiceUnavailable as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except Exception as exc:
            log.exception("group commit of %d events failed", len(batch))
            error = ServiceUnavailable("The event could not be recorded; retry later.")
            error.__cause__ = exc
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        if self._on_batch is not None:
            self._on_batch(len(batch))
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)
