"""A rebuild is not a request: the store's per-request timeout does not bound its walk of the
board, a stalled walk still fails, and a Redis rebuild lets other clients in between its
commands. No timings in the assertions: what is checked is that the work completes (or fails),
and the order in which Redis saw the commands."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from tests.scaled.test_rebuild_at_scale import monitored, populate
from tests.throwaway import ThrowawayRedis

from scoreboard.backends import SharedRedisIndex
from scoreboard.domain.errors import ServiceUnavailable
from scoreboard.domain.ranking import RankedEntry
from scoreboard.realtime.memory import MemoryRankIndex
from scoreboard.realtime.redis_rebuild import CHUNK
from scoreboard.service.upkeep import ranked
from scoreboard.store.sql import SqlStore

USERS = 5000


async def truth(url: str) -> list[RankedEntry]:
    store = await SqlStore.open(url, timeout=30)
    try:
        standings, _ = await store.standings_page(USERS, 0)
        return ranked(standings, 0)
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def scores_locked(url: str) -> AsyncIterator[None]:
    """PostgreSQL: `user_scores` locked against readers until the block ends (a walk started
    meanwhile waits for the lock before its first row)."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text("LOCK TABLE user_scores IN ACCESS EXCLUSIVE MODE"))
            yield
            await conn.rollback()
    finally:
        await engine.dispose()


async def test_a_rebuild_outlasts_the_request_timeout(database_url: str) -> None:
    """SQLite: a timeout of 1 ms, far less than the walk's pages take. PostgreSQL: the first
    page waits ~1.5 s for a lock, three times the timeout (as a big board's sort does)."""
    active = await populate(database_url, USERS)
    sqlite = database_url.startswith("sqlite")
    store = await SqlStore.open(database_url, timeout=0.001 if sqlite else 0.5)
    index = MemoryRankIndex()
    try:
        if sqlite:
            count = await index.replace_all(store.iter_standings(page_size=500))
        else:
            async with scores_locked(database_url):
                rebuild = asyncio.create_task(index.replace_all(store.iter_standings(500)))
                await asyncio.sleep(1.5)
            count = await rebuild
    finally:
        await store.close()
    assert count == len(active)
    assert await index.top(USERS) == await truth(database_url)


async def test_a_stalled_walk_still_fails(fresh_pg_url: str) -> None:
    """The walk's own bound: no page for `walk_stall` seconds fails it (it never hangs)."""
    await populate(fresh_pg_url, USERS)
    store = await SqlStore.open(fresh_pg_url, timeout=0.5, walk_stall=1.0)
    try:
        async with scores_locked(fresh_pg_url), asyncio.timeout(30):
            with pytest.raises(ServiceUnavailable):
                await MemoryRankIndex().replace_all(store.iter_standings(500))
    finally:
        await store.close()


async def test_redis_serves_other_clients_between_the_rebuilds_commands(
    sqlite_url: str, throwaway_redis: ThrowawayRedis
) -> None:
    """A client probing Redis while a rebuild runs is served between the rebuild's staging
    calls (each of at most `CHUNK` users, however big the store's pages): the rebuild never
    holds Redis for all of its work, nor any command for more than a few thousand users."""
    active = await populate(sqlite_url, USERS)
    store = await SqlStore.open(sqlite_url, timeout=30)
    client = aioredis.Redis.from_url(throwaway_redis.url)
    prober = aioredis.Redis.from_url(throwaway_redis.url)
    index = SharedRedisIndex(client, "rb:")

    async def rebuild_while_probing() -> None:
        rebuild = asyncio.create_task(index.replace_all(store.iter_standings(page_size=USERS)))
        while not rebuild.done():
            await prober.echo("probe")
        await rebuild

    try:
        seen = await monitored(throwaway_redis.port, client, rebuild_while_probing())
        assert await index.top(USERS) == await truth(sqlite_url)
    finally:
        await store.close()
        await client.aclose()
        await prober.aclose()
    sent = [args for by_script, args in seen if not by_script]
    stages = [i for i, args in enumerate(sent) if args[0] == "evalsha" and "tmp:" in args[3]]
    assert CHUNK <= 5000
    assert len(stages) >= len(active) // CHUNK >= 4
    staged = [args for by_script, args in seen if by_script and args[0] == "zadd"]
    assert max((len(args) - 2) // 2 for args in staged) <= CHUNK
    probes = [i for i, args in enumerate(sent) if args == ["echo", "probe"]]
    between = [i for i in probes if stages[0] < i < stages[-1]]
    assert between, "no other client was served while the rebuild staged its chunks"
