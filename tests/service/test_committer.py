"""Group commit against a real SQLite store: every submitted command is answered, in batches."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence

import pytest
from sqlalchemy import make_url

from scoreboard.domain.errors import ServiceUnavailable
from scoreboard.service.committer import GroupCommitter
from scoreboard.store.base import EventRecord, Outcome, ScoreCommand
from scoreboard.store.migrate import run_migrations
from scoreboard.store.sql import SqlStore


async def test_every_command_is_answered_across_full_batches(sqlite_url: str) -> None:
    await run_migrations(sqlite_url)
    store = await SqlStore.open(sqlite_url)
    batches: list[int] = []
    committer = GroupCommitter(store, window_seconds=0.01, max_batch=7, on_batch=batches.append)
    committer.start()
    try:
        user = await store.create_user("gc", None, "gc")
        commands = [ScoreCommand(user.user_id, "T", 1, f"k{n}", "h") for n in range(100)]
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(committer.submit(c) for c in commands)), 20
        )
        assert [o.outcome for o in outcomes] == [Outcome.RECORDED] * 100
        assert sum(batches) == 100 and max(batches) <= 7 and len(batches) < 100
        assert await store.count_events() == 100
        assert outcomes[-1].event is not None
        assert max(o.event.new_score for o in outcomes if o.event) == 100
    finally:
        await committer.close()
        await store.close()


async def test_close_commits_what_is_queued(sqlite_url: str) -> None:
    await run_migrations(sqlite_url)
    store = await SqlStore.open(sqlite_url)
    committer = GroupCommitter(store, window_seconds=0.05, max_batch=3)
    committer.start()
    user = await store.create_user("gc2", None, "gc2")
    pending = [
        asyncio.create_task(committer.submit(ScoreCommand(user.user_id, "T", 1))) for _ in range(10)
    ]
    await asyncio.sleep(0)
    await committer.close()
    outcomes = await asyncio.wait_for(asyncio.gather(*pending), 10)
    assert all(o.outcome is Outcome.RECORDED for o in outcomes)
    assert await store.count_events() == 10
    await store.close()


async def test_a_lone_event_does_not_wait_for_the_window(sqlite_url: str) -> None:
    """The window is for bursts: an event on an idle committer is committed at once."""
    await run_migrations(sqlite_url)
    store = await SqlStore.open(sqlite_url)
    batches: list[int] = []
    committer = GroupCommitter(store, window_seconds=60, on_batch=batches.append, timeout=30)
    committer.start()
    try:
        user = await store.create_user("lone", None, "lone")
        for _ in range(3):  # far less than one window of 60 s each
            answer = await asyncio.wait_for(
                committer.submit(ScoreCommand(user.user_id, "T", 1)), 10
            )
            assert answer.outcome is Outcome.RECORDED
        assert batches == [1, 1, 1]
    finally:
        await committer.close()
        await store.close()


async def test_a_command_past_its_timeout_is_never_written_later(sqlite_url: str) -> None:
    """While a batch waits on a locked database, a queued command times out (503) and is
    dropped: the batch after the lock is released does not write it."""
    await run_migrations(sqlite_url)
    store = await SqlStore.open(sqlite_url, timeout=10)
    committer = GroupCommitter(store, timeout=0.5)
    committer.start()
    blocker = sqlite3.connect(str(make_url(sqlite_url).database), isolation_level=None)
    try:
        user = await store.create_user("late", None, "late")
        blocker.execute("BEGIN IMMEDIATE")  # the committer's first batch waits for the lock
        first = asyncio.create_task(committer.submit(ScoreCommand(user.user_id, "T", 1, "a", "h")))
        await asyncio.sleep(0.1)
        with pytest.raises(ServiceUnavailable):
            await committer.submit(ScoreCommand(user.user_id, "T", 2, "b", "h"))
        cancelled = asyncio.create_task(
            committer.submit(ScoreCommand(user.user_id, "T", 4, "c", "h"))
        )
        await asyncio.sleep(0.1)
        cancelled.cancel()  # its client went away before any batch took it
        with pytest.raises(ServiceUnavailable):
            await first  # in flight: not acknowledged, though it may still commit
        blocker.execute("ROLLBACK")
        after = await committer.submit(ScoreCommand(user.user_id, "T", 8, "d", "h"))
        assert after.outcome is Outcome.RECORDED
        assert await store.sum_event_points() in (8, 9)  # never 2 or 4: those were dropped
    finally:
        blocker.close()
        await committer.close()
        await store.close()


async def test_post_commit_failure_still_answers(sqlite_url: str) -> None:
    """The events are durable once committed: a failing `after_commit` costs the ranks only."""
    await run_migrations(sqlite_url)
    store = await SqlStore.open(sqlite_url)
    seen: list[int] = []

    async def broken(events: Sequence[EventRecord]) -> list[list[int | None]]:
        seen.append(len(events))
        raise RuntimeError("index bug")

    committer = GroupCommitter(store, after_commit=broken)
    committer.start()
    try:
        user = await store.create_user("pc", None, "pc")
        answer = await committer.submit(ScoreCommand(user.user_id, "T", 3))
        assert answer.outcome is Outcome.RECORDED and answer.ranks == () and seen == [1]
        assert await store.count_events() == 1
    finally:
        await committer.close()
        await store.close()
