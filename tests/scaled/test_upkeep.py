"""Rank-index upkeep across processes, in-process: two app instances stand for two processes
sharing one PostgreSQL database and one Redis key prefix (each has its own clients, broker and
upkeep task, exactly as separate processes would)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.api.conftest import Api, make_settings
from tests.conftest import lifespan
from tests.proxy import TcpProxy, upstream, via

from scoreboard.app import create_app
from scoreboard.domain.ranking import Standing

from .conftest import sql_board

ACTIONS = ["TASK_COMPLETED", "DAILY_LOGIN", "ACHIEVEMENT_UNLOCKED", "level_complete"]


@asynccontextmanager
async def instance(database_url: str, tmp_path: Path, **settings: Any) -> AsyncIterator[Api]:
    values = {"index_check_seconds": 0.05, "jwt_secret": "s" * 40, **settings}
    app = create_app(make_settings(database_url, tmp_path, **values))
    async with lifespan(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Api(client, app)


async def until(condition: Any, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def index_equals_sql(api: Api, database_url: str) -> bool:
    expected, total = await sql_board(database_url)
    try:
        return (
            await api.services.board.default_index.top(100),
            await api.services.board.default_index.count(),
        ) == (
            expected,
            total,
        )
    except Exception:
        return False


@pytest.fixture
def shared(fresh_pg_url: str, redis_url: str, redis_prefix: str) -> dict[str, Any]:
    return {"redis_url": redis_url, "redis_prefix": redis_prefix}


async def test_rebuilds_by_another_process_lose_no_update(
    fresh_pg_url: str, shared: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """While A rebuilds again and again, B takes a storm of writes: B notices each rebuild
    (the lock), defers its updates and applies them after the swap, so none is lost. (Should
    B notice one too late, it rebuilds itself: slower, still exact.)"""
    shared = {**shared, "index_check_seconds": 0.1}
    async with (
        instance(fresh_pg_url, tmp_path, **shared) as a,
        instance(fresh_pg_url, tmp_path, **shared) as b,
    ):
        caplog.set_level(logging.INFO, logger="scoreboard.service.upkeep")
        users = [await b.user() for _ in range(12)]
        stop = asyncio.Event()
        codes: list[int] = []

        async def writer(headers: dict[str, str], seed: int) -> None:
            rng = random.Random(seed)
            while not stop.is_set():
                codes.append((await b.score(headers, rng.choice(ACTIONS))).status_code)

        writers = [asyncio.create_task(writer(h, i)) for i, (_, h) in enumerate(users * 2)]
        rebuilt = []
        for _ in range(4):
            rebuilt.append(await a.services.board.rebuild())
            await asyncio.sleep(0.2)  # B sees each rebuild end, and the next one start
        stop.set()
        await asyncio.gather(*writers)
        assert set(codes) == {201} and len(codes) > 50
        assert any(isinstance(n, int) for n in rebuilt)
        await until(lambda: _ready(a, b))
        assert await index_equals_sql(b, fresh_pg_url)
        joined = [r for r in caplog.records if "another process is rebuilding" in r.message]
        assert joined, "B never joined a rebuild of A's"


async def _ready(*apis: Api) -> bool:
    return all(api.services.board.index_ready for api in apis)


async def test_concurrent_rebuilds_take_turns(
    fresh_pg_url: str, shared: dict[str, Any], tmp_path: Path
) -> None:
    async with (
        instance(fresh_pg_url, tmp_path, **shared) as a,
        instance(fresh_pg_url, tmp_path, **shared) as b,
    ):
        for _ in range(3):
            _, headers = await a.user()
            assert (await a.score(headers)).status_code == 201
        results = await asyncio.gather(a.services.board.rebuild(), b.services.board.rebuild())
        # Each view's lock is held by one of them: they cannot both rebuild every view (3
        # users on each of the four default boards' current views: 12 entries).
        assert None in results and all(n in (None, 12) for n in results)
        await until(lambda: _ready(a, b))
        for api in (a, b):
            assert await index_equals_sql(api, fresh_pg_url)


async def test_a_diverged_index_is_repaired(
    fresh_pg_url: str, shared: dict[str, Any], tmp_path: Path
) -> None:
    async with instance(fresh_pg_url, tmp_path, reconcile_seconds=0.3, **shared) as api:
        ids = []
        for _ in range(3):
            user_id, headers = await api.user()
            assert (await api.score(headers)).status_code == 201
            ids.append(user_id)
        # Something wrote a wrong standing straight into Redis (a bug, an operator...).
        await api.services.board.default_index.apply(Standing(ids[0], "forged", 10**9, 0), 0)
        assert not await index_equals_sql(api, fresh_pg_url)
        await until(lambda: index_equals_sql(api, fresh_pg_url))


async def test_reads_with_both_backends_down_serve_the_last_known_top(
    fresh_pg_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    async with (
        TcpProxy(*upstream(fresh_pg_url, 5432)) as pg,
        TcpProxy(*upstream(redis_url, 6379)) as rd,
    ):
        # No fast path: every read below goes to the index, then SQL, then the last known top.
        settings = {
            "redis_url": via(redis_url, rd),
            "redis_prefix": redis_prefix,
            "top_cache_seconds": 0,
        }
        async with instance(via(fresh_pg_url, pg), tmp_path, **settings) as api:
            for _ in range(4):
                _, headers = await api.user()
                assert (await api.score(headers)).status_code == 201
            known = (await api.client.get("/api/v1/leaderboard", params={"limit": 20})).json()
            await rd.refuse()
            await pg.refuse()
            for params in ({"limit": 20}, {"limit": 3}, {}):
                r = await api.client.get("/api/v1/leaderboard", params=params)
                assert r.status_code == 200, r.text
                limit = params.get("limit", 10)
                assert r.json()["items"] == known["items"][:limit]
            # The last known top is the whole board here: every page can be cut from it.
            r = await api.client.get("/api/v1/leaderboard", params={"offset": 2})
            assert r.json()["items"] == known["items"][2:12] and r.json()["total"] == 4
            assert (await api.score(headers)).status_code == 503
            await rd.restore()
            await pg.restore()
            await until(lambda: _ready(api))
            assert await index_equals_sql(api, via(fresh_pg_url, pg))


async def test_a_lost_index_is_rebuilt_once_per_view_not_in_turns(
    fresh_pg_url: str, shared: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Both processes lose every view's index at once (a Redis Cluster failover): each view is
    rebuilt once, by one of them, and the other joins that rebuild. Before, a process busy
    rebuilding one view polled the others late, took the other's rebuild of them for one
    noticed too late, and rebuilt them again itself, and so on in turns for seconds while
    every write's ranks went to SQL."""
    import redis.asyncio as aioredis

    shared = {**shared, "index_check_seconds": 0.2}  # grace 0.6 s: a slow loop still joins
    async with (
        instance(fresh_pg_url, tmp_path, **shared) as a,
        instance(fresh_pg_url, tmp_path, **shared) as b,
    ):
        for api in (a, b, a, b):  # both have committed: neither is fresh (joins on time only)
            _, headers = await api.user()
            assert (await api.score(headers)).status_code == 201
        await until(lambda: _ready(a, b))
        caplog.set_level(logging.INFO, logger="scoreboard.service.upkeep")
        caplog.clear()
        redis = aioredis.from_url(shared["redis_url"])
        try:
            markers = [
                name async for name in redis.scan_iter(match=f"{shared['redis_prefix']}rank:*")
            ]
            markers = [name for name in markers if name.endswith(b"}:marker")]
            assert len(markers) == 4  # the four default boards' current views
            await redis.delete(*markers)
        finally:
            await redis.aclose()
        await until(lambda: _ready(a, b))
        await asyncio.sleep(1.0)  # and stays so: no process starts a rebuild again
        assert await _ready(a, b)
        rebuilt = [r for r in caplog.records if r.message.startswith("rank index rebuilt")]
        late = [r for r in caplog.records if "noticed too late" in r.message]
        assert (len(rebuilt), late) == (4, [])
        for api in (a, b):
            assert await index_equals_sql(api, fresh_pg_url)
