"""Shared rate limits on Redis: one count for every process, and what happens when Redis is
unreachable (fail open by default, bounded in time; fail closed on request)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from tests.proxy import TcpProxy, upstream, via

from scoreboard.backends import FailOpenLimiter, redis_client
from scoreboard.domain.errors import ServiceUnavailable
from scoreboard.realtime.limiter import LimitsRateLimiter
from scoreboard.realtime.redis_broker import server_name


@asynccontextmanager
async def limiter_on(
    url: str, prefix: str, *, fail_open: bool = True
) -> AsyncIterator[FailOpenLimiter]:
    """As `backends` wires it: limits' Redis storage on the index's kind of client."""
    from limits.aio.storage import RedisStorage

    client = redis_client(url, 0.5)
    pool: dict[str, object] = {"connection_pool": client.connection_pool}
    storage = RedisStorage(
        "async+" + url, implementation="redispy", key_prefix=prefix, wrap_exceptions=True, **pool
    )
    try:
        yield FailOpenLimiter(
            LimitsRateLimiter(storage),
            timeout=0.5,
            cooldown=0.3,
            fail_open=fail_open,
            where=server_name(client),
        )
    finally:
        await client.aclose()


async def test_the_count_is_shared(redis_url: str, redis_prefix: str) -> None:
    async with (
        limiter_on(redis_url, redis_prefix) as one,
        limiter_on(redis_url, redis_prefix) as two,
    ):
        decisions = [
            await limiter.hit("3/minute", "score", "u1") for limiter in (one, two, one, two)
        ]
        assert [d.allowed for d in decisions] == [True, True, True, False]
        assert decisions[-1].retry_after >= 1
        assert (await two.hit("3/minute", "score", "u2")).allowed  # per key


@pytest.mark.parametrize("fault", ["refuse", "blackhole"])
async def test_redis_down_fails_open_quickly(redis_url: str, redis_prefix: str, fault: str) -> None:
    async with (
        TcpProxy(*upstream(redis_url, 6379)) as proxy,
        limiter_on(via(redis_url, proxy), redis_prefix) as limiter,
    ):
        assert (await limiter.hit("1/minute", "k")).allowed
        assert not (await limiter.hit("1/minute", "k")).allowed
        if fault == "refuse":
            await proxy.refuse()
        else:
            proxy.blackhole()
        began = time.monotonic()
        for _ in range(20):  # let through, and only the first hit waits for Redis
            assert (await limiter.hit("1/minute", "k")).allowed
        assert time.monotonic() - began < 1.5
        await proxy.restore()
        await asyncio.sleep(0.35)  # past the cooldown: counting in Redis again
        assert not (await limiter.hit("1/minute", "k")).allowed


async def test_fail_closed_refuses_with_503(redis_url: str, redis_prefix: str) -> None:
    async with (
        TcpProxy(*upstream(redis_url, 6379)) as proxy,
        limiter_on(via(redis_url, proxy), redis_prefix, fail_open=False) as limiter,
    ):
        await proxy.refuse()
        with pytest.raises(ServiceUnavailable):
            await limiter.hit("10/minute", "k")


async def test_an_outage_is_one_warning_naming_the_server(
    redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="scoreboard.backends")
    async with (
        TcpProxy(*upstream(redis_url, 6379)) as proxy,
        limiter_on(via(redis_url, proxy), redis_prefix) as limiter,
    ):
        await proxy.refuse()
        for _ in range(3):
            await limiter.hit("10/minute", "k")
            await asyncio.sleep(0.35)  # past the cooldown: each hit tries Redis again
    lines = [r.getMessage() for r in caplog.records if "rate limits:" in r.getMessage()]
    assert len(lines) == 1, lines
    assert f"redis 127.0.0.1:{proxy.port} failed" in lines[0]
