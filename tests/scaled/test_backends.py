"""`open_backends` wires every Redis URL scheme (redis://, unix://, rediss://,
redis+cluster://) into a working index, broker and rate limiter; a wrong scheme is refused."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.exceptions import RedisError
from tests.conftest import require_commands
from tests.throwaway import ThrowawayRedis

from scoreboard.backends import (
    CountingErrors,
    FailOpenLimiter,
    SharedRedisIndex,
    limits_uri,
    open_backends,
    redis_client,
)
from scoreboard.config import Settings
from scoreboard.domain.ranking import RankedEntry, Standing
from scoreboard.realtime.base import Charge
from scoreboard.realtime.redis import RedisBroker
from scoreboard.realtime.redis_cluster import ClusterAddress, parse_cluster_url
from scoreboard.realtime.redis_indexes import RedisRankIndexes


def settings(tmp_path: Path, redis_url: str, prefix: str = "sbtest:backends:") -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'b.db'}",
        data_dir=tmp_path,
        redis_url=redis_url,
        redis_prefix=prefix,
    )


@pytest.fixture
def unix_redis(tmp_path: Path) -> Iterator[str]:
    """A throwaway redis-server listening on a Unix socket only."""
    require_commands("redis-server")
    sock = tmp_path / "redis.sock"
    command = ["redis-server", "--port", "0", "--unixsocket", str(sock), "--save", ""]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while not sock.exists():
        assert time.monotonic() < deadline, "redis-server did not start"
        time.sleep(0.02)
    try:
        yield f"unix://{sock}"
    finally:
        process.kill()
        process.wait()


def test_limits_uris() -> None:
    assert limits_uri("redis://h:1/0") == "async+redis://h:1/0"
    assert limits_uri("rediss://h:1/0") == "async+rediss://h:1/0"
    assert limits_uri("unix:///tmp/r.sock?db=0") == "async+redis+unix:///tmp/r.sock?db=0"
    cluster = "redis+cluster://:pw@h:1,k:2"
    assert limits_uri(cluster) == "async+redis+cluster://:pw@h:1,k:2"


def test_cluster_urls() -> None:
    address = parse_cluster_url("redis+cluster://u%40x:p%3Aw@h1:7000,10.0.0.2:7001/")
    assert address == ClusterAddress([("h1", 7000), ("10.0.0.2", 7001)], "u@x", "p:w")
    assert parse_cluster_url("redis+cluster://h:1") == ClusterAddress([("h", 1)], None, None)
    assert parse_cluster_url("redis+cluster://:pw@h:1/0").password == "pw"
    for bad in ("redis+cluster://h", "redis+cluster://", "redis+cluster://h:1/2", "redis://h:1"):
        with pytest.raises(ValueError):
            parse_cluster_url(bad)


async def test_cluster_scheme(cluster_url: str, cluster_prefix: str, tmp_path: Path) -> None:
    """Named by one node only: the others are discovered."""
    one_node = cluster_url.split(",")[0]
    await every_part_works(one_node, cluster_prefix, tmp_path)


async def test_a_malformed_cluster_url_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="host:port"):
        await open_backends(settings(tmp_path, "redis+cluster://127.0.0.1"))


async def test_redis_scheme(redis_url: str, redis_prefix: str, tmp_path: Path) -> None:
    await every_part_works(redis_url, redis_prefix, tmp_path)


async def test_unix_scheme(unix_redis: str, tmp_path: Path) -> None:
    await every_part_works(unix_redis, "sbtest:unix:", tmp_path)


async def every_part_works(url: str, prefix: str, tmp_path: Path) -> None:
    backends = await open_backends(settings(tmp_path, url, prefix))
    try:
        indexes, broker, limiter = backends.indexes, backends.broker, backends.limiter
        assert isinstance(indexes, RedisRankIndexes) and isinstance(broker, RedisBroker)
        index = indexes.index("global:all:")
        assert isinstance(index, SharedRedisIndex)
        assert isinstance(limiter, FailOpenLimiter)

        async def pages():  # type: ignore[no-untyped-def]
            yield [Standing("a", "A", 5, 1), Standing("b", "B", 7, 2)]

        assert await index.replace_all(pages()) == 2
        await index.apply(Standing("a", "A", 9, 3), 1)
        assert await index.top(10) == [RankedEntry(1, "a", "A", 9), RankedEntry(2, "b", "B", 7)]
        got: asyncio.Queue[bytes] = asyncio.Queue()

        async def nothing() -> None:
            return None

        await broker.start(got.put, nothing)
        await broker.publish(b"hello")
        assert await asyncio.wait_for(got.get(), 3) == b"hello"
        decisions = [(await limiter.hit("2/minute", "k")).allowed for _ in range(3)]
        assert decisions == [True, True, False]  # counted in Redis, not failing open
        charges = [Charge("n", "2/minute")]
        charged = [(await limiter.charge(charges, "score", "u")).allowed for _ in range(3)]
        assert charged == [True, True, False]
        assert backends.redis_ping is not None
        await backends.redis_ping()
    finally:
        await backends.close()


async def test_rediss_is_wired_without_connecting(tmp_path: Path) -> None:
    backends = await open_backends(settings(tmp_path, "rediss://127.0.0.1:1/0"))
    try:
        assert isinstance(backends.indexes, RedisRankIndexes)
        assert isinstance(backends.broker, RedisBroker)
    finally:
        await backends.close()


async def test_unknown_scheme_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Unsupported Redis URL scheme"):
        await open_backends(settings(tmp_path, "memcached://127.0.0.1:11211"))


async def test_redis_index_and_subscription_failures_are_reported(
    throwaway_redis: ThrowawayRedis,
) -> None:
    """`open_backends(on_error=...)`: a failed Redis index call and every failed subscription
    attempt reach the hook (metrics: `scoreboard_backend_errors_total{backend="redis"}`)."""
    errors: list[str] = []
    client = redis_client(throwaway_redis.url, 0.3)
    index = CountingErrors(SharedRedisIndex(client, "t:"), errors.append)
    await index.state()  # reachable: nothing reported
    assert errors == []
    lost: list[int] = []
    broker = RedisBroker(
        throwaway_redis.url,
        "t:events",
        connect_timeout=0.3,
        backoff_initial=0.05,
        backoff_max=0.1,
        ping_interval=0.2,
        on_lost=lambda: lost.append(1),
    )

    async def nothing(*_: object) -> None:
        return None

    await broker.start(nothing, nothing)
    throwaway_redis.kill()
    try:
        with pytest.raises((RedisError, OSError)):
            await index.state()
        assert errors == ["index.state"]
        await asyncio.sleep(0.8)
        assert len(lost) >= 2  # every failed attempt, not only the first
    finally:
        await broker.close()
        await client.aclose()
