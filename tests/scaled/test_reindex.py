"""`scoreboard reindex` rebuilds the Redis index from PostgreSQL, with a progress bar, also
while a serving process takes writes (it defers them during the rebuild: none is lost)."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from tests.e2e.client import new_user

from scoreboard.backends import SharedRedisIndex
from scoreboard.domain.ranking import Standing
from scoreboard.realtime.redis import RedisRankIndex

from .conftest import Start, sql_board

pytestmark = pytest.mark.e2e

SCORE = "/api/v1/scores/events"


def run_reindex(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SCOREBOARD_")}
    exe = Path(sys.executable).with_name("scoreboard")
    return subprocess.run(
        [str(exe), "reindex", *args],
        env={**base, **env, "COLUMNS": "100"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def index_top(redis_url: str, prefix: str) -> list[object]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        return list(await SharedRedisIndex(client, prefix, board="global:all:").top(100))
    finally:
        await client.aclose()


async def test_reindex_while_a_process_serves_writes(
    start: Start, env: dict[str, str], fresh_pg_url: str, redis_url: str, redis_prefix: str
) -> None:
    server = await start(env)
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        tokens = [(await new_user(http, "rx"))[1] for _ in range(6)]
        # Garbage the rebuild must drop: a standing of nobody, written straight to Redis.
        client = aioredis.Redis.from_url(redis_url)
        await RedisRankIndex(client, redis_prefix, board="global:all:").apply(
            Standing("ghost", "g", 10**6, 0), 0
        )
        await client.aclose()
        stop = asyncio.Event()

        async def writer(token: str) -> None:
            rng = random.Random(token)
            while not stop.is_set():
                r = await http.post(
                    SCORE,
                    json={"action_type": rng.choice(["TASK_COMPLETED", "DAILY_LOGIN"])},
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert r.status_code == 201, r.text

        writers = [asyncio.create_task(writer(t)) for t in tokens]
        await asyncio.sleep(0.3)
        done = await asyncio.to_thread(run_reindex, env)
        stop.set()
        await asyncio.gather(*writers)
        assert done.returncode == 0, done.stderr
        # 6 users on each of the four default boards' current views.
        assert "indexed 24 entries" in done.stderr
        assert "reindex" in done.stderr and "24/24" in done.stderr  # the progress bar, finished

        async def consistent() -> bool:
            ready = (await http.get("/readyz")).json()
            expected, _ = await sql_board(fresh_pg_url)
            return ready["checks"]["rank_index"] == "ok" and (
                await index_top(redis_url, redis_prefix) == expected
            )

        for _ in range(100):
            if await consistent():
                break
            await asyncio.sleep(0.1)
        expected, _ = await sql_board(fresh_pg_url)
        assert await index_top(redis_url, redis_prefix) == expected
        body = (await http.get("/api/v1/leaderboard", params={"limit": 100})).json()
        assert [e["user_id"] for e in body["items"]] == [e.user_id for e in expected]


async def test_reindex_waits_for_a_rebuild_elsewhere(
    env: dict[str, str], redis_url: str, redis_prefix: str
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        async with SharedRedisIndex(
            client, redis_prefix, board="global:all:"
        ).rebuild_lock() as held:
            assert held
            busy = await asyncio.to_thread(run_reindex, env, "--wait", "1")
        assert busy.returncode == 1 and "another process" in busy.stderr
        free = await asyncio.to_thread(run_reindex, env)
        assert free.returncode == 0 and "indexed 0 entries" in free.stderr, free.stderr
    finally:
        await client.aclose()
