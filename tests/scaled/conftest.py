"""Fixtures of the scaled-mode tests: real `scoreboard serve` processes on PostgreSQL + Redis,
TCP proxies the tests own in front of either, and a throwaway redis-server to restart.

Servers are started from a thread (`await start(...)`), so that a proxy running in the test's
event loop keeps forwarding while the server connects through it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.server import ServerProcess
from tests.proxy import TcpProxy, upstream

from scoreboard.domain.ranking import RankedEntry
from scoreboard.service.upkeep import ranked
from scoreboard.store.migrate import run_migrations
from scoreboard.store.sql import SqlStore

SECRET = "scaled-tests-secret-" + "x" * 32

# Quick upkeep and short timeouts, so that faults show and heal within a test's patience.
SCALED_ENV = {
    "SCOREBOARD_RATE_LIMIT_SCORE": "100000/minute",
    "SCOREBOARD_RATE_LIMIT_LOGIN": "100000/minute",
    "SCOREBOARD_RATE_LIMIT_LOGIN_ADDRESS": "100000/minute",
    "SCOREBOARD_RATE_LIMIT_REGISTER": "100000/minute",
    "SCOREBOARD_WS_TICK_MS": "20",
    "SCOREBOARD_INDEX_CHECK_SECONDS": "0.1",
    "SCOREBOARD_JWT_SECRET": SECRET,
}

Start = Callable[..., Awaitable[ServerProcess]]
# Until `/readyz` answers 200. Generous: on a loaded 2-core machine one process spent 13 s in
# its imports alone, and tests start three at once.
START_SECONDS = 90.0


@pytest.fixture
async def pg_proxy(fresh_pg_url: str) -> AsyncIterator[TcpProxy]:
    async with TcpProxy(*upstream(fresh_pg_url, 5432)) as proxy:
        yield proxy


@pytest.fixture
async def redis_proxy(redis_url: str) -> AsyncIterator[TcpProxy]:
    async with TcpProxy(*upstream(redis_url, 6379)) as proxy:
        yield proxy


@pytest.fixture
def env(fresh_pg_url: str, redis_url: str, redis_prefix: str) -> dict[str, str]:
    """Scaled mode on a fresh database and a key prefix of this test's own."""
    return {
        **SCALED_ENV,
        "SCOREBOARD_DATABASE_URL": fresh_pg_url,
        "SCOREBOARD_REDIS_URL": redis_url,
        "SCOREBOARD_REDIS_PREFIX": redis_prefix,
    }


@pytest.fixture
def cluster_env(fresh_pg_url: str, cluster_url: str, cluster_prefix: str) -> dict[str, str]:
    """`env` on the session's Redis Cluster (`redis+cluster://`) instead of one Redis."""
    return {
        **SCALED_ENV,
        "SCOREBOARD_DATABASE_URL": fresh_pg_url,
        "SCOREBOARD_REDIS_URL": cluster_url,
        "SCOREBOARD_REDIS_PREFIX": cluster_prefix,
    }


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    """`await start(env, name="a")`: a ready `scoreboard serve`; stopped after the test."""
    started: list[ServerProcess] = []

    async def factory(
        env: dict[str, str], name: str = "srv", *, ready: bool = True, port: int | None = None
    ) -> ServerProcess:
        values = {"SCOREBOARD_DATA_DIR": str(tmp_path / "data"), **env}
        server = ServerProcess(tmp_path / name, values, port=port)
        started.append(server)
        if ready:
            return await asyncio.to_thread(server.start, START_SECONDS)
        await asyncio.to_thread(server.spawn)
        return server

    yield factory
    for server in started:
        await asyncio.to_thread(server.stop)


async def sql_board(database_url: str, limit: int = 100) -> tuple[list[RankedEntry], int]:
    """The board as SQL ranks it (the truth the index must equal)."""
    store = await SqlStore.open(database_url)
    try:
        standings, total = await store.standings_page(limit, 0)
    finally:
        await store.close()
    return ranked(standings, 0), total


async def event_ids(database_url: str) -> set[int]:
    import asyncpg

    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return {row[0] for row in await conn.fetch("SELECT id FROM score_events")}
    finally:
        await conn.close()


async def migrated(database_url: str) -> str:
    await run_migrations(database_url)
    return database_url


def board_items(body: dict[str, Any]) -> list[RankedEntry]:
    return [RankedEntry(**item) for item in body["items"]]


def unique(prefix: str = "u") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"
