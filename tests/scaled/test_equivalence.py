"""Property: on random boards full of ties, SQL (SQLite and PostgreSQL), the in-memory index
and the Redis index (filled by a rebuild from SQL, or by updates) rank exactly alike.

`tests/realtime/test_ranking_equivalence.py` already proves memory == Redis == the reference
order; this adds the database to the comparison, through the store's own reads.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from scoreboard.backends import SharedRedisIndex
from scoreboard.domain.ranking import SCORE_MAX, SCORE_MIN, Standing, rank_all
from scoreboard.realtime.base import RankIndex
from scoreboard.realtime.memory import MemoryRankIndex
from scoreboard.realtime.redis import RedisRankIndex
from scoreboard.store.migrate import run_migrations
from scoreboard.store.schema import user_scores, users
from scoreboard.store.sql import SqlStore

# Few ids, scores and instants: ties on score and on reached_at are the common case; mixed
# case and a multi-byte letter, so byte order matters; the ends of the 64-bit range.
BOARDS = hs.dictionaries(
    keys=hs.text(alphabet="aAbB_é", min_size=1, max_size=3),
    values=hs.tuples(
        hs.one_of(hs.integers(-3, 3), hs.sampled_from([SCORE_MIN, -SCORE_MAX, SCORE_MAX])),
        hs.integers(0, 3),
        hs.sampled_from(["", "Ann", "Ünï"]),
    ),
    max_size=25,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = (
        f"sqlite+aiosqlite:///{tmp_path / 'eq.db'}"
        if request.param == "sqlite"
        else str(request.getfixturevalue("fresh_pg_url"))
    )
    asyncio.run(run_migrations(url))
    return url


async def load_sql(url: str, board: list[Standing]) -> None:
    engine = create_async_engine(url, poolclass=NullPool)
    now = datetime.now(UTC)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.delete(user_scores))
            await conn.execute(sa.delete(users))
            if board:
                people = [
                    {
                        "user_id": s.user_id,
                        "username": f"n{i}",
                        "display_name": s.display_name,
                        "created_at": now,
                    }
                    for i, s in enumerate(board)
                ]
                await conn.execute(sa.insert(users), people)
                rows = [
                    {
                        "user_id": s.user_id,
                        "score": s.score,
                        "reached_at_us": s.reached_at_us,
                        "version": 1,
                        "updated_at": now,
                    }
                    for s in board
                ]
                await conn.execute(sa.insert(user_scores), rows)
    finally:
        await engine.dispose()


async def compare(url: str, redis_url: str, board: list[Standing]) -> None:
    await load_sql(url, board)
    expected = rank_all(board)
    store = await SqlStore.open(url)
    client = aioredis.Redis.from_url(redis_url)
    prefixes = [f"sbtest:{uuid.uuid4().hex[:10]}:" for _ in range(2)]
    try:
        page, total = await store.standings_page(len(board) + 1, 0)
        sql = rank_all(page)  # ranks of SQL's order (rank_all keeps an already sorted list)
        assert (page, total) == (sorted(board, key=Standing.sort_key), len(board))
        assert sql == expected
        for entry in expected:
            found = await store.standing_of(entry.user_id)
            assert found is not None and found[1] == entry.rank
        assert await store.standing_of("absent") is None
        window, _ = await store.standings_page(2, 1)
        assert [s.user_id for s in window] == [e.user_id for e in expected[1:3]]

        rebuilt: list[RankIndex] = [MemoryRankIndex(), SharedRedisIndex(client, prefixes[0])]
        for index in rebuilt:
            await index.replace_all(store.iter_standings(page_size=3))
        applied: list[RankIndex] = [MemoryRankIndex(), SharedRedisIndex(client, prefixes[1])]
        await RedisRankIndex(client, prefixes[1]).set_marker("applied")  # checked reads answer
        for index in applied:
            for standing in board:
                await index.apply(standing, 1)
        for index in (*rebuilt, *applied):
            assert await index.top(len(board) + 1) == expected
            assert await index.count() == len(board)
            for entry in expected:
                assert await index.entry_of(entry.user_id) == entry
    finally:
        await store.close()
        for prefix in prefixes:
            keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
            if keys:
                await client.delete(*keys)
        await client.aclose()


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(raw=BOARDS)
def test_sql_memory_and_redis_rank_alike(
    database: str, redis_url: str, raw: dict[str, tuple[int, int, str]]
) -> None:
    board = [Standing(u, name, score, at) for u, (score, at, name) in raw.items()]
    asyncio.run(compare(database, redis_url, board))
