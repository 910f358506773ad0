"""`RedisBroker` against real Redis: fan-out between processes, and faults.

Faults never touch the shared Redis: they are made with a `TcpProxy` the test owns between the
broker and Redis, or with a throwaway `redis-server` the test starts and kills.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from tests.proxy import TcpProxy, upstream, via
from tests.throwaway import ThrowawayRedis

from scoreboard.realtime.redis import RedisBroker

FAST = {"connect_timeout": 0.5, "ping_interval": 0.3}  # fault tests: detect a dead link fast


class Inbox:
    """What one broker's process received: messages and resync calls."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[bytes] = asyncio.Queue()
        self.resyncs = 0
        self.resynced = asyncio.Event()

    async def on_message(self, message: bytes) -> None:
        await self.messages.put(message)

    async def on_resync(self) -> None:
        self.resyncs += 1
        self.resynced.set()

    async def next(self) -> bytes:
        async with asyncio.timeout(3.0):
            return await self.messages.get()

    async def wait_resync(self) -> None:
        async with asyncio.timeout(8.0):  # backoff after a short outage is well under this
            await self.resynced.wait()
        self.resynced.clear()


@asynccontextmanager
async def running(
    url: str, channel: str, **timing: float
) -> AsyncIterator[tuple[RedisBroker, Inbox]]:
    broker, inbox = RedisBroker(url, channel, **timing), Inbox()
    await broker.start(inbox.on_message, inbox.on_resync)
    try:
        yield broker, inbox
    finally:
        await broker.close()


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[TcpProxy]:
    """A proxy of our own in front of the shared Redis: cutting it touches only our links."""
    async with TcpProxy(*upstream(redis_url, 6379)) as p:
        yield p


async def test_two_processes_both_receive_in_publish_order(
    redis_url: str, redis_prefix: str
) -> None:
    channel = redis_prefix + "events"
    a, b = running(redis_url, channel), running(redis_url, channel)
    async with a as (pub_a, inbox_a), b as (pub_b, inbox_b):
        for i in range(5):
            await pub_a.publish(b"a%d" % i)
        await pub_b.publish(b"from-b")
        expected = [*(b"a%d" % i for i in range(5)), b"from-b"]
        for inbox in (inbox_a, inbox_b):
            assert [await inbox.next() for _ in expected] == expected
        assert inbox_a.resyncs == inbox_b.resyncs == 0
        assert pub_a.connected and pub_b.connected


async def test_a_failing_handler_does_not_stop_the_subscriber(
    redis_url: str, redis_prefix: str
) -> None:
    received: list[bytes] = []

    async def handler(message: bytes) -> None:
        received.append(message)
        if message == b"boom":
            raise RuntimeError("handler bug")

    broker = RedisBroker(redis_url, redis_prefix + "events")
    await broker.start(handler, Inbox().on_resync)
    try:
        await broker.publish(b"boom")
        await broker.publish(b"after")
        for _ in range(100):
            if received == [b"boom", b"after"]:
                break
            await asyncio.sleep(0.02)
        assert received == [b"boom", b"after"]
    finally:
        await broker.close()


async def test_cut_connection_reconnects_resyncs_and_delivers_again(
    redis_url: str, redis_prefix: str, proxy: TcpProxy
) -> None:
    channel = redis_prefix + "events"
    async with (
        running(via(redis_url, proxy), channel, **FAST) as (sub, inbox),
        running(redis_url, channel) as (pub, _),
    ):
        await proxy.refuse()  # reset the subscription, and refuse the reconnects for a while
        await asyncio.sleep(0.4)
        assert not sub.connected
        started = time.monotonic()
        await sub.publish(b"lost")  # Redis unreachable: returns quickly, never raises
        assert time.monotonic() - started < 1.5
        await proxy.restore()
        await inbox.wait_resync()
        await pub.publish(b"again")
        assert await inbox.next() == b"again"
        await proxy.cut()  # a plain reset, with reconnects accepted at once
        await inbox.wait_resync()
        await pub.publish(b"and again")
        assert await inbox.next() == b"and again"


async def test_a_publish_that_works_again_ends_the_reconnect_backoff(
    redis_url: str, redis_prefix: str, proxy: TcpProxy
) -> None:
    """Backoff of 30 s: without the publish cutting it short, no resync would come in time."""
    slow = {**FAST, "backoff_initial": 30.0, "backoff_max": 30.0}
    async with running(via(redis_url, proxy), redis_prefix + "e", **slow) as (b, inbox):
        await proxy.refuse()
        await asyncio.sleep(0.4)  # the subscription fails and waits out its (long) backoff
        assert not b.connected
        await proxy.restore()
        await asyncio.sleep(0.3)
        assert not b.connected  # still waiting: restoring alone does not end the backoff
        await b.publish(b"lost while unsubscribed")  # succeeds: Redis is back
        await inbox.wait_resync()  # so the subscriber reconnects now and the clients resync
        await b.publish(b"next")
        assert await inbox.next() == b"next"


async def test_black_holed_link_is_detected_and_publish_stays_bounded(
    redis_url: str, redis_prefix: str, proxy: TcpProxy
) -> None:
    channel = redis_prefix + "events"
    async with (
        running(via(redis_url, proxy), channel, **FAST) as (sub, inbox),
        running(redis_url, channel) as (pub, _),
    ):
        proxy.blackhole()  # connections stay open, nothing flows: only a PING can tell
        started = time.monotonic()
        await sub.publish(b"into the void")
        assert time.monotonic() - started < 1.5  # bounded by the 1 s publish timeout
        for _ in range(100):
            if not sub.connected:
                break
            await asyncio.sleep(0.05)
        assert not sub.connected, "a silent link must be detected by the PING check"
        await proxy.cut()  # drop the stuck connections; new ones are still held
        await proxy.restore()
        await inbox.wait_resync()
        await pub.publish(b"back")
        assert await inbox.next() == b"back"


async def test_killed_redis_server_restarted(throwaway_redis: ThrowawayRedis) -> None:
    async with running(throwaway_redis.url, "events", **FAST) as (broker, inbox):
        await broker.publish(b"before")
        assert await inbox.next() == b"before"
        throwaway_redis.kill()
        started = time.monotonic()
        await broker.publish(b"while down")  # must not raise, must not hang
        assert time.monotonic() - started < 1.5
        await asyncio.sleep(0.3)
        throwaway_redis.start()
        await inbox.wait_resync()
        await broker.publish(b"after")
        assert await inbox.next() == b"after"
        assert inbox.messages.empty()


async def test_start_with_redis_down_then_up(
    redis_url: str, redis_prefix: str, proxy: TcpProxy
) -> None:
    await proxy.refuse()
    started = time.monotonic()
    async with running(via(redis_url, proxy), redis_prefix + "e", **FAST) as (b, inbox):
        assert time.monotonic() - started < 2.0  # start gives up waiting, keeps trying
        assert not b.connected
        await proxy.restore()
        await inbox.wait_resync()  # the first subscription came late: clients resync
        await b.publish(b"hello")
        assert await inbox.next() == b"hello"


async def test_close_is_clean_and_publish_after_close_is_a_no_op(
    redis_url: str, redis_prefix: str
) -> None:
    broker = RedisBroker(redis_url, redis_prefix + "events")
    await broker.start(Inbox().on_message, Inbox().on_resync)
    await broker.close()
    assert not broker.connected
    await broker.publish(b"ignored")
    leftovers = [t for t in asyncio.all_tasks() if t.get_name().startswith("redis-broker")]
    assert leftovers == []


async def test_a_long_outage_is_one_warning_naming_the_server_then_one_line_when_back(
    throwaway_redis: ThrowawayRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="scoreboard.realtime.redis_broker")
    timing = {**FAST, "backoff_initial": 0.05, "backoff_max": 0.1}
    async with running(throwaway_redis.url, "events", **timing) as (_, inbox):
        throwaway_redis.kill()
        await asyncio.sleep(1.5)  # a dozen or more failed reconnects
        lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        where = f"redis 127.0.0.1:{throwaway_redis.port}"
        lost = [line for line in lines if "lost" in line]
        assert len(lost) == 1, lines  # not one per attempt
        assert where in lost[0]
        throwaway_redis.start()
        await inbox.wait_resync()
    back = [r.getMessage() for r in caplog.records if "again" in r.getMessage()]
    assert back == [f"redis broker: subscribed to events on {where} again; resyncing clients"]
