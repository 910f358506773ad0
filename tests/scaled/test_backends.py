"""`open_backends` wires every Redis URL scheme (redis://, unix://, rediss://) into a working
index, broker and rate limiter; a wrong scheme is refused."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import require_commands

from scoreboard.backends import FailOpenLimiter, SharedRedisIndex, limits_uri, open_backends
from scoreboard.config import Settings
from scoreboard.domain.ranking import RankedEntry, Standing
from scoreboard.realtime.redis import RedisBroker


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


async def test_redis_scheme(redis_url: str, redis_prefix: str, tmp_path: Path) -> None:
    await every_part_works(redis_url, redis_prefix, tmp_path)


async def test_unix_scheme(unix_redis: str, tmp_path: Path) -> None:
    await every_part_works(unix_redis, "sbtest:unix:", tmp_path)


async def every_part_works(url: str, prefix: str, tmp_path: Path) -> None:
    backends = await open_backends(settings(tmp_path, url, prefix))
    try:
        index, broker, limiter = backends.index, backends.broker, backends.limiter
        assert isinstance(index, SharedRedisIndex) and isinstance(broker, RedisBroker)
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
        assert backends.redis_ping is not None
        await backends.redis_ping()
    finally:
        await backends.close()


async def test_rediss_is_wired_without_connecting(tmp_path: Path) -> None:
    backends = await open_backends(settings(tmp_path, "rediss://127.0.0.1:1/0"))
    try:
        assert isinstance(backends.index, SharedRedisIndex)
        assert isinstance(backends.broker, RedisBroker)
    finally:
        await backends.close()


async def test_unknown_scheme_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Unsupported Redis URL scheme"):
        await open_backends(settings(tmp_path, "memcached://127.0.0.1:11211"))
