"""Shared fixtures: real PostgreSQL and Redis, never mocks.

PostgreSQL: a fresh database per test session on the machine's server
(SCOREBOARD_TEST_PG, default postgresql://postgres@127.0.0.1:5432/postgres), dropped at the end.
Redis: the machine's server (SCOREBOARD_TEST_REDIS, default redis://127.0.0.1:6379/0) with a
fresh key prefix per test. Redis Cluster: a throwaway cluster of the session's own
(`tests/cluster.py`: three masters, three replicas), a fresh key prefix per test. When a
server (or the redis-server binary) is missing, its tests skip with the reason, except under
CI=true, where they fail: CI must never pass by skipping.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from asgi_lifespan import LifespanManager
from tests.cluster import ThrowawayCluster
from tests.throwaway import PortTaken, ThrowawayRedis

from scoreboard.domain.boards import BoardCatalogue
from scoreboard.store.migrate import run_migrations
from scoreboard.store.sql import SqlStore

PG_ADMIN_URL = os.environ.get("SCOREBOARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("SCOREBOARD_TEST_REDIS", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

pytest_plugins = ["tests.parallel"]  # pytest-xdist: worker count, the fuzz tally


# How long an in-process app may take to start or to stop (asgi-lifespan's default is 5 s): on
# a loaded machine, with the suite's workers all busy, a start with migrations takes longer.
LIFESPAN_SECONDS = 60.0


def lifespan(app: Any) -> LifespanManager:
    """`async with lifespan(app) as manager:` the app started, with the suite's patience."""
    return LifespanManager(app, startup_timeout=LIFESPAN_SECONDS, shutdown_timeout=LIFESPAN_SECONDS)


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 2
        ):
            return True
    except OSError:
        return False


def require_service(name: str, url: str, default_port: int) -> None:
    if _reachable(url, default_port):
        return
    reason = f"{name} is not reachable at {url}"
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: tests needing it must not skip)")
    pytest.skip(reason)


def require_commands(*names: str) -> None:
    """Skip (fail under CI=true) unless every named program is on PATH."""
    missing = [name for name in names if shutil.which(name) is None]
    if not missing:
        return
    reason = f"not on PATH: {', '.join(missing)}"
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: tests needing it must not skip)")
    pytest.skip(reason)


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """SQLAlchemy URL of a fresh, empty PostgreSQL database for this test session."""
    require_service("PostgreSQL", PG_ADMIN_URL, 5432)
    name = f"scoreboard_test_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    parts = urlsplit(PG_ADMIN_URL)
    base = f"postgresql+asyncpg://{parts.netloc}"
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def fresh_pg_url(pg_database_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (for tests that need an empty schema)."""
    name = f"scoreboard_t_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    parts = urlsplit(PG_ADMIN_URL)
    try:
        yield f"postgresql+asyncpg://{parts.netloc}/{name}"
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'scoreboard.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Contract tests take this: the same body runs on SQLite and on PostgreSQL (fresh DB each)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'scoreboard.db'}"
    return str(request.getfixturevalue("fresh_pg_url"))


@pytest.fixture
def boards() -> BoardCatalogue | None:
    """The board catalogue `store` keeps (None: the default one). Override it in a module (a
    fixture of the same name) or per test (`@pytest.mark.parametrize("boards", ...)`)."""
    return None


@pytest.fixture
async def store(database_url: str, boards: BoardCatalogue | None) -> AsyncIterator[SqlStore]:
    """A migrated SqlStore on SQLite and on PostgreSQL (`database_url`), closed after."""
    await run_migrations(database_url)
    opened = await SqlStore.open(database_url, boards=boards)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def redis_url() -> str:
    require_service("Redis", REDIS_URL, 6379)
    return REDIS_URL


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Any]:
    """A client of the machine's Redis for one test (pair it with `redis_prefix`)."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix unique to this test; its keys are deleted afterwards."""
    import redis.asyncio as aioredis

    prefix = f"sbtest:{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = aioredis.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def throwaway_redis() -> Iterator[ThrowawayRedis]:
    """A redis-server of the test's own on a free port, started; killed after the test."""
    require_commands("redis-server", "redis-cli")
    for attempt in range(3):  # a free port can be taken between the check and the start
        server = ThrowawayRedis(free_port())
        try:
            server.start()
            break
        except PortTaken:
            if attempt == 2:
                raise
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawayCluster]:
    """A Redis Cluster for the session (3 masters + 3 replicas on free ports); tests share
    it through per-test prefixes (`cluster_prefix`) and never kill its nodes."""
    require_commands("redis-server", "redis-cli")
    cluster = ThrowawayCluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster_url(redis_cluster: ThrowawayCluster) -> str:
    """`redis+cluster://` naming every node of the session's cluster."""
    return redis_cluster.url


@pytest.fixture
async def cluster_client(cluster_url: str) -> AsyncIterator[Any]:
    """A `RedisCluster` client of the session's cluster for one test (with `cluster_prefix`),
    made as the service makes it."""
    from scoreboard.realtime.redis_cluster import cluster_client as make

    client = make(cluster_url, 5.0)
    yield client
    await client.aclose()


@pytest.fixture
async def cluster_prefix(cluster_url: str) -> AsyncIterator[str]:
    """A key prefix unique to this test on the cluster; its keys (on every master) are
    deleted afterwards."""
    from scoreboard.realtime.redis_cluster import cluster_client as make

    prefix = f"sbtest:{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = make(cluster_url, 5.0)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
        for key in keys:
            await client.unlink(key)
    finally:
        await client.aclose()
