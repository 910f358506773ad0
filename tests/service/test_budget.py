"""One request, one database budget: the store calls made for a request share
`SCOREBOARD_DB_TIMEOUT_SECONDS` instead of each getting it anew."""

from __future__ import annotations

import asyncio

import pytest

from scoreboard.deadline import bounded, not_database_time, request_budget
from scoreboard.domain.errors import ServiceUnavailable
from scoreboard.store.guard import Guard


async def slow(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "done"


async def test_calls_of_one_request_share_the_budget() -> None:
    guard = Guard(5.0)
    assert await guard.run(slow(0.2)) == "done"  # no budget: each call has its own 5 s
    assert await guard.run(slow(0.2)) == "done"
    with request_budget(0.3):
        assert await guard.run(slow(0.2)) == "done"
        with pytest.raises(ServiceUnavailable):
            await guard.run(slow(0.2))  # 0.4 s in all would overrun the request's 0.3 s
        with pytest.raises(ServiceUnavailable):
            await guard.run(slow(0.0))  # spent: refused without starting
    await guard.drain()


async def test_the_clock_starts_at_the_first_database_call() -> None:
    with request_budget(0.3):
        await asyncio.sleep(0.4)  # e.g. reading a slow client's body
        assert bounded(5.0) > 0.2
        assert await Guard(5.0).run(slow(0.0)) == "done"


async def test_tasks_started_for_a_request_share_its_budget() -> None:
    with request_budget(0.2):
        bounded(5.0)  # starts the clock
        await asyncio.sleep(0.3)
        assert await asyncio.create_task(asyncio.to_thread(lambda: 1)) == 1
        assert await asyncio.create_task(_left()) == 0.0


async def _left() -> float:
    return bounded(5.0)


async def test_work_marked_as_not_the_databases_is_left_out() -> None:
    """A login's password hash between its account lookup and its session write."""
    with not_database_time():  # no budget: nothing to leave out
        await asyncio.sleep(0)
    with request_budget(0.3):
        with not_database_time():  # the clock has not started: nothing to leave out
            await asyncio.sleep(0)
        bounded(5.0)  # the lookup starts the clock
        with not_database_time():
            await asyncio.sleep(0.4)
        assert bounded(5.0) > 0.2
        assert await Guard(5.0).run(slow(0.0)) == "done"
        await asyncio.sleep(0.4)  # outside: counted
        assert bounded(5.0) == 0.0
