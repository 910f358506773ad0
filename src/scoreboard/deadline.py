"""One time budget for all the database work of one request.

`SCOREBOARD_DB_TIMEOUT_SECONDS` promises a 503 within that time when the database does not
answer. Each store call is bounded on its own (`store.guard.Guard`), but a request makes several
(the account lookup, then the write; or it queues behind a batch that is itself waiting), and
bounds that each restart would add up. So an HTTP request opens a `Budget` (see
`api.middleware.RequestLayer`) and every bounded wait made for it takes the smaller of its own
bound and what is left of the budget.

The clock starts at the request's first database call, not at its arrival: time spent reading
a slow client's body or waiting for a rate limit is not the database's, nor is the time of
work between two calls that `not_database_time` marks (a login's password hash, which waits
for its thread on a bounded pool, between the account lookup and the session's write). The
budget travels in a context variable, so the tasks a request starts (`asyncio` copies the
context) share the same `Budget` object; work not started for a request (the group
committer's worker, upkeep) has none and keeps its per-call bound.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar


class Budget:
    """`seconds` for everything, from the first `left()` call on."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._ends: float | None = None

    def left(self) -> float:
        now = time.monotonic()
        if self._ends is None:
            self._ends = now + self.seconds
        return max(0.0, self._ends - now)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """The time spent in the block (once the clock has started) is not counted."""
        if self._ends is None:
            yield
            return
        started = time.monotonic()
        try:
            yield
        finally:
            self._ends += time.monotonic() - started


# Per request by construction (each request sets its own, for its own context): not state
# shared between requests.
_current: ContextVar[Budget | None] = ContextVar("scoreboard_request_budget", default=None)


@contextlib.contextmanager
def request_budget(seconds: float) -> Iterator[Budget]:
    """Run the block under a fresh budget of `seconds`."""
    budget = Budget(seconds)
    token = _current.set(budget)
    try:
        yield budget
    finally:
        _current.reset(token)


@contextlib.contextmanager
def not_database_time() -> Iterator[None]:
    """Leave the block's time out of the current request's budget, if there is one."""
    budget = _current.get()
    if budget is None:
        yield
        return
    with budget.paused():
        yield


def bounded(seconds: float) -> float:
    """How long the next wait may last: `seconds`, or less when the current request's budget
    has less left (0.0: it is spent)."""
    budget = _current.get()
    return seconds if budget is None else min(seconds, budget.left())
