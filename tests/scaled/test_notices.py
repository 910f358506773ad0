"""Change notices survive a broker outage: a notice whose publish failed is sent again once
Redis answers, so other processes' clients see the change without waiting for another one."""

from __future__ import annotations

import asyncio
import time

import orjson
from tests.proxy import TcpProxy, upstream, via

from scoreboard.realtime.memory import MemoryRankIndexes
from scoreboard.realtime.redis import RedisBroker
from scoreboard.service.leaderboard import LeaderboardService
from scoreboard.store.sql import SqlStore


async def test_a_failed_notice_is_sent_again_when_redis_answers(
    redis_url: str, redis_prefix: str, sqlite_url: str
) -> None:
    channel = redis_prefix + "events"
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def nothing() -> None:
        return None

    async with TcpProxy(*upstream(redis_url, 6379)) as proxy:
        writer = RedisBroker(via(redis_url, proxy), channel, publish_timeout=0.5)
        other = RedisBroker(redis_url, channel)  # another process's subscriber, not cut off
        store = await SqlStore.open(sqlite_url)
        failures: list[None] = []
        board = LeaderboardService(
            store, MemoryRankIndexes(), writer, on_publish_failed=lambda: failures.append(None)
        )
        await writer.start(lambda m: asyncio.sleep(0), nothing)
        await other.start(received.put, nothing)
        board.start()
        try:
            await proxy.refuse()
            committed_at = time.time()
            await board.publish_change("global")  # a committed change; its notice fails
            await asyncio.sleep(0.5)
            assert received.empty()
            assert failures  # each failed publish is told (scoreboard_backend_errors_total)
            await proxy.restore()  # no further change: only the retry can deliver it
            async with asyncio.timeout(5):
                notice = await received.get()
            # `at`: the commit's time, kept across the retry (fan-out latency, docs/OPERATIONS.md).
            decoded = orjson.loads(notice)
            assert decoded == {"type": "changed", "scope": "global", "at": decoded["at"]}
            assert committed_at <= decoded["at"] < committed_at + 0.5
        finally:
            await board.close()
            await writer.close()
            await other.close()
            await store.close()
