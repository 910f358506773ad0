"""The per-user points budget: derived from the score limit and the catalogue, or set."""

from __future__ import annotations

import pytest

from scoreboard.domain.catalogue import Catalogue
from scoreboard.realtime.limiter import LimitsRateLimiter
from scoreboard.service.limits import enforce, points_budget


def test_the_derived_budget_keeps_the_canonical_reach() -> None:
    catalogue = Catalogue.default()
    assert catalogue.max_points == 100
    # 60 events a minute of the highest-paying action: exactly the budget.
    assert points_budget("", "60/minute", catalogue.max_points) == "6000/1 minute"
    assert points_budget("", "5/second", 10) == "50/1 second"
    assert points_budget("900/hour", "60/minute", 100) == "900/hour"


def test_a_budget_below_one_event_is_refused_at_start_up() -> None:
    with pytest.raises(ValueError, match="highest points"):
        points_budget("50/minute", "60/minute", 100)


async def test_enforce_charges_the_cost() -> None:
    limiter = LimitsRateLimiter.in_memory()
    await enforce(limiter, "100/minute", "points", "u1", cost=60)
    with pytest.raises(Exception, match="slow"):
        await enforce(limiter, "100/minute", "points", "u1", cost=41, message="slow")
    await enforce(limiter, "100/minute", "points", "u1", cost=40)  # the refused 41 was not counted
    await enforce(limiter, "100/minute", "points", "u2", cost=100)
