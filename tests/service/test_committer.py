"""Group commit against a real SQLite store: every submitted command is answered, in batches."""

from __future__ import annotations

import asyncio

from scoreboard.service.committer import GroupCommitter
from scoreboard.store.base import Outcome, ScoreCommand
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
