"""Group commit: concurrent score events share one transaction.

Requests queue their command and wait; one worker takes everything queued (up to `max_batch`
commands), commits it in one `Store.record_events` call, hands the committed batch to
`after_commit` (the board: one index update and one change notice per batch, and every event's
rank back), then answers each request. Every answer comes after the commit, so a 2xx is durable;
one fsync serves many events.

Batches form while the previous one commits (the queue fills meanwhile), so a lone event on an
idle server is committed at once. Only when the previous batch had company (a burst is under
way) does the worker wait up to `window` for more before committing, and it stops waiting as
soon as `max_batch` commands are queued.

A request waits at most `timeout` (less when its budget has less left, `scoreboard.deadline`)
for its answer, including the time queued behind a batch that is itself waiting on a database
that does not answer: then it gets `ServiceUnavailable`, and its command, if no batch has
taken it yet, is dropped, never written after its 503. (One already in a batch in flight may
still commit, as with any timeout: a 503 means "not acknowledged"; retry with the same
Idempotency-Key.) A request cancelled while waiting (its client went away) is likewise
dropped if no batch has taken it; a batch in flight is never cancelled by one of its requests,
and its index update and notice happen whoever is still waiting.

Costs per request: one future and one timer (`loop.call_at`); no task, no `wait_for`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from scoreboard.deadline import bounded
from scoreboard.domain.errors import ServiceUnavailable
from scoreboard.store.base import EventRecord, Outcome, ScoreCommand, ScoreOutcome, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Committed:
    """A command's answer: the store's outcome, and for a recorded event its user's rank on
    each of `event.boards` once the batch reached the indexes (None where it could not tell)."""

    outcome: Outcome
    event: EventRecord | None = None
    ranks: tuple[int | None, ...] = ()


# After a commit: the batch's recorded events -> each one's ranks on its boards (see
# `LeaderboardService.committed`).
AfterCommit = Callable[[Sequence[EventRecord]], Awaitable[Sequence[Sequence[int | None]]]]
_Pending = tuple[ScoreCommand, asyncio.Future[Committed]]


def _late() -> ServiceUnavailable:
    return ServiceUnavailable("The database did not answer in time; retry later.")


def _expire(future: asyncio.Future[Committed]) -> None:
    if not future.done():
        future.set_exception(_late())


class GroupCommitter:
    def __init__(
        self,
        store: Store,
        *,
        window_seconds: float = 0.002,
        max_batch: int = 256,
        on_batch: Callable[[int], None] | None = None,
        timeout: float = 2.0,
        after_commit: AfterCommit | None = None,
        on_commit_seconds: Callable[[float], None] | None = None,
    ) -> None:
        """`on_batch(size)` and `on_commit_seconds(seconds)`: each committed batch's size and
        its store call's duration (metrics)."""
        self._on_commit_seconds = on_commit_seconds
        self._store = store
        self._timeout = timeout
        self._window = window_seconds
        self._max_batch = max_batch
        self._queue: deque[_Pending] = deque()
        self._wake: asyncio.Future[None] | None = None  # set while the worker waits for work
        self._want = 1  # queued commands that wake the worker: 1 when idle, max_batch in a window
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._on_batch = on_batch
        self._after_commit = after_commit

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="group-committer")

    async def close(self) -> None:
        """Stop taking work; commit everything already submitted, then stop."""
        if self._task is None:
            return
        self._closing = True
        self._poke()
        await asyncio.wait({self._task})
        self._task = None

    async def submit(self, command: ScoreCommand) -> Committed:
        if self._task is None or self._task.done() or self._closing:
            raise ServiceUnavailable("The writer is not running.")
        timeout = bounded(self._timeout)
        if timeout <= 0:
            raise _late()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Committed] = loop.create_future()
        self._queue.append((command, future))
        if len(self._queue) >= self._want:
            self._poke()
        timer = loop.call_at(loop.time() + timeout, _expire, future)
        try:
            # A cancelled wait cancels the future: a batch not yet formed skips it (`_commit`).
            return await future
        finally:
            timer.cancel()

    def _poke(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def _wait(self, want: int, seconds: float | None) -> None:
        """Until `want` commands are queued (or close() is called), at most `seconds`."""
        if len(self._queue) >= want or self._closing:
            return
        loop = asyncio.get_running_loop()
        self._wake, self._want = loop.create_future(), want
        timer = None if seconds is None else loop.call_later(seconds, self._poke)
        try:
            await self._wake
        finally:
            self._wake, self._want = None, 1
            if timer is not None:
                timer.cancel()

    def _take(self) -> list[_Pending]:
        n = min(len(self._queue), self._max_batch)
        return [self._queue.popleft() for _ in range(n)]

    async def _run(self) -> None:
        busy = False  # the last batch had company: a burst may be under way
        while True:
            await self._wait(1, None)
            if not self._queue:  # closing, and everything submitted is committed
                return
            if busy and self._window > 0:
                await self._wait(self._max_batch, self._window)
            batch = self._take()
            busy = len(batch) > 1
            await self._commit(batch)

    async def _commit(self, batch: list[_Pending]) -> None:
        batch = [(command, future) for command, future in batch if not future.done()]
        if not batch:
            return
        started = time.perf_counter()
        try:
            outcomes = await self._store.record_events([command for command, _ in batch])
        except ServiceUnavailable as exc:
            self._fail(batch, exc)
            return
        except Exception as exc:
            log.exception("group commit of %d events failed", len(batch))
            error = ServiceUnavailable("The event could not be recorded; retry later.")
            error.__cause__ = exc
            self._fail(batch, error)
            return
        if self._on_batch is not None:
            self._on_batch(len(batch))
        if self._on_commit_seconds is not None:
            self._on_commit_seconds(time.perf_counter() - started)
        ranks = await self._ranks(outcomes)
        for (_, future), outcome, rank in zip(batch, outcomes, ranks, strict=True):
            if not future.done():
                future.set_result(Committed(outcome.outcome, outcome.event, rank))

    async def _ranks(self, outcomes: list[ScoreOutcome]) -> list[tuple[int | None, ...]]:
        """Hand the recorded events to `after_commit`: each outcome's ranks on its boards."""
        ranks: list[tuple[int | None, ...]] = [()] * len(outcomes)
        recorded = [
            (i, o.event)
            for i, o in enumerate(outcomes)
            if o.outcome is Outcome.RECORDED and o.event is not None
        ]
        if self._after_commit is None or not recorded:
            return ranks
        try:
            found = await self._after_commit([event for _, event in recorded])
        except Exception:  # the board never raises; a bug there must not fail durable events
            log.exception("post-commit work of %d events failed", len(recorded))
            return ranks
        for (i, _), rank in zip(recorded, found, strict=True):
            ranks[i] = tuple(rank)
        return ranks

    @staticmethod
    def _fail(batch: list[_Pending], error: Exception) -> None:
        for _, future in batch:
            if not future.done():
                future.set_exception(error)
