"""One score event is one Redis round trip for the index: the update and the rank for the
response come from one script call. Counted with `MONITOR` on a redis-server of the test's own:
it lists every command a client sent, and marks those a script ran as `[0 lua]`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from tests.throwaway import ThrowawayRedis

from scoreboard.backends import SharedRedisIndex
from scoreboard.domain.ranking import Standing
from scoreboard.realtime.memory import MemoryBroker
from scoreboard.realtime.redis_indexes import RedisRankIndexes
from scoreboard.service.committer import GroupCommitter
from scoreboard.service.leaderboard import LeaderboardService
from scoreboard.store.base import ScoreCommand
from scoreboard.store.migrate import run_migrations
from scoreboard.store.sql import SqlStore

END = "end-of-counted-commands"


class Monitor:
    """`redis-cli monitor` on the throwaway server: what clients send, until `sent()`."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Monitor:
        self._process = await asyncio.create_subprocess_exec(
            "redis-cli", "-p", str(self._port), "monitor", stdout=asyncio.subprocess.PIPE
        )
        assert self._process.stdout is not None
        assert (await self._process.stdout.readline()).strip() == b"OK"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._process is not None
        self._process.kill()
        await self._process.wait()

    async def sent(self, client: aioredis.Redis) -> list[str]:
        """Commands sent by clients (not run by scripts) since the monitor started."""
        await client.echo(END)
        assert self._process is not None and self._process.stdout is not None
        lines: list[str] = []
        async with asyncio.timeout(5):
            while END not in (line := (await self._process.stdout.readline()).decode()):
                if "lua]" not in line:
                    lines.append(line.split('"', 1)[1].split('"', 1)[0].lower())
        return lines


async def pages(standings: list[Standing]) -> AsyncIterator[list[Standing]]:
    yield standings


async def test_an_update_and_its_rank_are_one_round_trip(
    throwaway_redis: ThrowawayRedis,
) -> None:
    client = aioredis.Redis.from_url(throwaway_redis.url)
    index = SharedRedisIndex(client, "rt:")
    try:
        await index.replace_all(pages([Standing(f"u{i}", f"U{i}", i * 10, i) for i in range(5)]))
        await index.apply(Standing("warm", "W", 1, 1), 1)  # loads the script, connects
        async with Monitor(throwaway_redis.port) as monitor:
            rank = await index.apply(Standing("u1", "U1", 35, 7), 2)
            assert await monitor.sent(client) == ["evalsha"]
        assert rank == 2  # 40, then 35, then 30, ...

        await client.delete("rt:rank:{global}:marker")  # the index was lost (e.g. a flush)
        assert await index.apply(Standing("u2", "U2", 99, 9), 3) is None  # no wrong rank
    finally:
        await client.aclose()


async def test_a_batch_of_events_is_one_index_round_trip(
    throwaway_redis: ThrowawayRedis, sqlite_url: str
) -> None:
    """The committer hands each committed batch to the board: one script call per board
    updates the index for every event of the batch and returns all their ranks."""
    client = aioredis.Redis.from_url(throwaway_redis.url)
    await run_migrations(sqlite_url)
    store = await SqlStore.open(sqlite_url)
    board = LeaderboardService(store, RedisRankIndexes(client, "rt:"), MemoryBroker())
    batches: list[int] = []
    committer = GroupCommitter(
        store, window_seconds=0.05, on_batch=batches.append, after_commit=board.committed
    )
    committer.start()
    try:
        users = [await store.create_user(f"u{i}", None, f"U{i}") for i in range(8)]
        await board.rebuild()
        await committer.submit(ScoreCommand(users[0].user_id, "T", 1))  # warm: script loaded
        batches.clear()
        async with Monitor(throwaway_redis.port) as monitor:
            commands = [ScoreCommand(users[n % 8].user_id, "T", 1 + n) for n in range(40)]
            answers = await asyncio.gather(*(committer.submit(c) for c in commands))
            sent = await monitor.sent(client)
        assert sum(batches) == 40 and len(batches) < 40
        # One script call per view (the four default boards) per batch, sent as one pipeline
        # (tests/realtime/test_rank_indexes_contract.py counts the round trips).
        assert sent == ["evalsha"] * 4 * len(batches)
        assert all(len(a.ranks) == 4 for a in answers)
        assert all(r is not None and 1 <= r <= 8 for a in answers for r in a.ranks)  # the index
    finally:
        await committer.close()
        await store.close()
        await client.aclose()


async def test_ranks_the_index_cannot_tell_are_one_sql_read_per_view_per_batch(
    throwaway_redis: ThrowawayRedis, sqlite_url: str
) -> None:
    """While the index is unusable (here: never rebuilt), a batch's answers still carry every
    rank, read from SQL once per view for the whole batch after its commit
    (`service.batch_ranks`), not once per request and per board."""
    from sqlalchemy import event

    client = aioredis.Redis.from_url(throwaway_redis.url)
    await run_migrations(sqlite_url)
    store = await SqlStore.open(sqlite_url)
    board = LeaderboardService(store, RedisRankIndexes(client, "rt:"), MemoryBroker())
    batches: list[int] = []
    committer = GroupCommitter(
        store, window_seconds=0.05, on_batch=batches.append, after_commit=board.committed
    )
    ranked: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "count(" in statement.lower():  # a rank: the rows ranked ahead, counted
            ranked.append(statement)

    engine = store._engines.read.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    committer.start()
    try:
        users = [await store.create_user(f"u{i}", None, f"U{i}") for i in range(8)]
        assert not board.index_ready
        commands = [ScoreCommand(users[n % 8].user_id, "T", 1 + n) for n in range(40)]
        answers = await asyncio.gather(*(committer.submit(c) for c in commands))
        assert sum(batches) == 40 and len(batches) < 40
        assert len(ranked) == 4 * len(batches)  # the four default boards' views, per batch
        assert all(len(a.ranks) == 4 for a in answers)
        assert all(r is not None and 1 <= r <= 8 for a in answers for r in a.ranks)
        last = await committer.submit(ScoreCommand(users[3].user_id, "T", 5))
        assert last.event is not None
        for on, rank in zip(last.event.boards, last.ranks, strict=True):  # SQL's, after it
            found = await store.view_standing_of(on.view, users[3].user_id)
            assert found is not None and rank == found[1]
    finally:
        event.remove(engine, "before_cursor_execute", seen)
        await committer.close()
        await store.close()
        await client.aclose()
