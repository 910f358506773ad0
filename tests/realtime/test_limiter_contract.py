"""One contract body for every `RateLimiter`: in memory and on Redis (real Redis, a prefix per
test). Two handles stand for two processes: on Redis two limiters on one server, in memory
the one limiter (it serves one process). `charge` runs on a clock the test moves (Redis gets
it as an argument instead of its own clock); `hit` is `limits`' and runs on the real clock.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import redis.asyncio as aioredis
from tests.scaled.test_round_trips import Monitor
from tests.throwaway import ThrowawayRedis

from scoreboard.realtime.base import Charge, RateLimiter
from scoreboard.realtime.limiter import LimitsRateLimiter, MemoryCounters, RedisCounters

START = 1_800_000_000 - 1_800_000_000 % 3600  # on a minute's and an hour's boundary


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Limiters:
    one: RateLimiter
    two: RateLimiter
    clock: Clock


@pytest.fixture(params=["memory", "redis", "cluster"])
def limiters(request: pytest.FixtureRequest) -> Limiters:
    """Sync, so that it may pull the async Redis fixtures lazily (as the rank-index contract
    does): the memory run needs no Redis at all. `cluster`: the session's Redis Cluster, with
    `limits`' own cluster storage (`async+redis+cluster://`), as the service makes it."""
    clock = Clock(START)
    if request.param == "memory":
        one = LimitsRateLimiter.in_memory(clock)
        return Limiters(one, one, clock)
    from scoreboard.backends import limits_uri
    from scoreboard.realtime.limiter import limits_storage

    kind = request.param
    client = request.getfixturevalue(f"{kind}_client")
    prefix = request.getfixturevalue(f"{kind}_prefix")
    url = request.getfixturevalue(f"{kind}_url")

    def limiter() -> LimitsRateLimiter:
        storage, _ = limits_storage(client, limits_uri(url), prefix + "limits", 5.0)
        return LimitsRateLimiter(storage, counters=RedisCounters(client, prefix + "c:", clock))

    return Limiters(limiter(), limiter(), clock)


COUNT = "3/minute"


async def test_charges_are_counted_for_every_process(limiters: Limiters) -> None:
    one, two = limiters.one, limiters.two
    decisions = [await h.charge([Charge("n", COUNT)], "score", "u1") for h in (one, two, one, two)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[-1].refused_by == 0 and decisions[-1].retry_after >= 1
    assert (await two.charge([Charge("n", COUNT)], "score", "u2")).allowed  # per key


async def test_a_refused_charge_charges_nothing(limiters: Limiters) -> None:
    one, two = limiters.one, limiters.two

    def both(points: int) -> list[Charge]:
        return [Charge("n", COUNT), Charge("p", "100/minute", points)]

    assert (await one.charge(both(60), "u")).allowed
    refused = await two.charge(both(41), "u")  # the points refuse: the count is not charged
    assert not refused.allowed and refused.refused_by == 1
    assert (await two.charge(both(40), "u")).allowed
    assert (await one.charge(both(0), "u")).allowed  # the third event: count 3, points 100
    refused = await one.charge(both(0), "u")
    assert not refused.allowed and refused.refused_by == 0
    assert not (await one.charge([Charge("p", "100/minute", 1)], "u")).allowed


async def test_retry_after_is_the_refusing_limits_and_honest(limiters: Limiters) -> None:
    one, clock = limiters.one, limiters.clock
    charges = [Charge("n", "2/minute"), Charge("p", "1000/hour", 1)]
    clock.now = START + 10
    assert (await one.charge(charges, "a")).allowed and (await one.charge(charges, "a")).allowed
    refused = await one.charge(charges, "a")
    # Next window, where these two weigh 2 × (1 - 30/60) and one more fits: 50 s + 30 s.
    assert (refused.allowed, refused.refused_by, refused.retry_after) == (False, 0, 80)
    clock.now = START + 10 + 79
    assert not (await one.charge(charges, "a")).allowed
    clock.now = START + 10 + 80
    assert (await one.charge(charges, "a")).allowed

    clock.now = START
    assert (
        await one.charge([Charge("n", "2/minute"), Charge("p", "1000/hour", 1000)], "b")
    ).allowed
    refused = await one.charge(charges, "b")
    assert (refused.refused_by, refused.retry_after) == (1, 3604)  # 3600 × (1 + 1/1000)
    assert (await one.charge(charges[:1], "b")).allowed  # the count was not charged

    ones = [Charge("n", "1/minute"), Charge("p", "1/hour")]
    assert (await one.charge(ones, "c")).allowed
    refused = await one.charge(ones, "c")  # both refuse: the first names it, the retry
    # waits for both (each until the full previous window has slid out: 2 × 60 s, 2 × 3600 s)
    assert (refused.refused_by, refused.retry_after) == (0, 7200)


async def test_a_burst_at_a_window_boundary_does_not_double_the_allowance(
    limiters: Limiters,
) -> None:
    one, clock = limiters.one, limiters.clock
    ten = [Charge("n", "10/minute")]
    clock.now = START + 59.9
    assert [(await one.charge(ten, "k")).allowed for _ in range(11)] == [True] * 10 + [False]
    clock.now = START + 60.1  # a fixed window would allow ten more here
    assert not (await one.charge(ten, "k")).allowed
    clock.now = START + 90  # half the previous window still counts: room for five
    assert [(await one.charge(ten, "k")).allowed for _ in range(6)] == [True] * 5 + [False]
    clock.now = START + 180  # two windows on, nothing of either is left
    assert [(await one.charge(ten, "k")).allowed for _ in range(11)] == [True] * 10 + [False]


async def test_hits_are_counted_for_every_process(limiters: Limiters) -> None:
    one, two = limiters.one, limiters.two
    decisions = [await h.hit(COUNT, "login", "u1") for h in (one, two, one, two)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[-1].retry_after >= 1
    assert (await one.hit("100/minute", "pts", "u1", cost=60)).allowed
    assert not (await two.hit("100/minute", "pts", "u1", cost=41)).allowed
    assert (await two.hit("100/minute", "pts", "u1", cost=40)).allowed  # 41 was not counted


# -- what each implementation stores: constant per key and charge, whatever the cost -------------


async def test_memory_counters_stay_bounded() -> None:
    clock = Clock(START)
    counters = MemoryCounters(clock)
    for user in range(100):
        assert (await counters.charge([Charge("p", "6000/minute", 6000)], f"u{user}")).allowed
    assert len(counters) == 100  # one counter per key, not one entry per point
    clock.now = START + 120  # two windows on: every one of them is stale
    for i in range(60):
        await counters.charge([Charge("p", "6000/minute", 1)], f"v{i % 3}")
    assert len(counters) == 3


async def test_redis_keeps_one_small_hash_per_key(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    counters = RedisCounters(redis_client, redis_prefix)
    charges = [Charge("n", "60/minute"), Charge("p", "6000/minute", 5000)]
    assert (await counters.charge(charges, "score", "u1")).allowed
    key = redis_prefix + "score/u1"
    assert await redis_client.hlen(key) == 6
    assert 0 < await redis_client.ttl(key) <= 120
    assert await redis_client.hget(key, "p:c") == b"5000"


async def test_a_charge_is_one_round_trip(throwaway_redis: ThrowawayRedis) -> None:
    """Both limits of a score event, refused or not: one `EVALSHA` (`MONITOR` tells)."""
    client = aioredis.Redis.from_url(throwaway_redis.url)
    counters = RedisCounters(client, "rt:")
    charges = [Charge("n", "2/minute"), Charge("p", "6000/minute", 10)]
    try:
        assert (await counters.charge(charges, "u0")).allowed  # loads the script, connects
        async with Monitor(throwaway_redis.port) as monitor:
            assert (await counters.charge(charges, "u1")).allowed
            assert (await counters.charge(charges, "u1")).allowed
            assert not (await counters.charge(charges, "u1")).allowed
            assert await monitor.sent(client) == ["evalsha"] * 3
    finally:
        await client.aclose()
