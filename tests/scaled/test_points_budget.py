"""The points budget on shared Redis storage: a hit charges its cost, for every process, and a
refused hit charges nothing (the same contract as the in-process limiter,
tests/service/test_limits.py)."""

from __future__ import annotations

from .test_limits import limiter_on


async def test_costs_are_charged_and_shared(redis_url: str, redis_prefix: str) -> None:
    async with (
        limiter_on(redis_url, redis_prefix) as one,
        limiter_on(redis_url, redis_prefix) as two,
    ):
        assert (await one.hit("100/minute", "score-points", "u1", cost=60)).allowed
        refused = await two.hit("100/minute", "score-points", "u1", cost=41)
        assert not refused.allowed and refused.retry_after >= 1
        assert (await two.hit("100/minute", "score-points", "u1", cost=40)).allowed
        assert not (await one.hit("100/minute", "score-points", "u1", cost=1)).allowed
        assert (await one.hit("100/minute", "score-points", "u2", cost=100)).allowed
