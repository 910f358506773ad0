"""The one way the services apply a rate limit, and the derived per-user points budget."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from limits import parse

from scoreboard.domain.errors import RateLimited
from scoreboard.realtime.base import Charge, RateDecision, RateLimiter


async def enforce(
    limiter: RateLimiter, limit: str, *key: str, message: str | None = None, cost: int = 1
) -> None:
    """Count `cost` hits of `key` against `limit`; raise `RateLimited` (with its retry-after)
    when the limit refuses them."""
    decision = await limiter.hit(limit, *key, cost=cost)
    if not decision.allowed:
        raise RateLimited(decision.retry_after, message)


async def enforce_all(
    limiter: RateLimiter, charges: Sequence[Charge], messages: Sequence[str], *key: str
) -> None:
    """Charge every one of `charges` for `key` at once, or none of them (`RateLimiter.charge`);
    raise `RateLimited` with the message of the first refusing charge and the retry-after after
    which every refusing one would allow it."""
    decision = await limiter.charge(charges, *key)
    if not decision.allowed:
        raise RateLimited(decision.retry_after, messages[decision.refused_by or 0])


class CountedLimiter:
    """A `RateLimiter` telling `on_refused(name)` of every refusal of the one it wraps: the
    name is the counter's (`enforce`'s first key part: "register-ip", "login-user-ip", ...;
    for `charge`, the first refusing charge's name: "score" or "points"). Each refusal is one
    `RateLimited`, one 429 answer: the wiring's single place that sees them all."""

    def __init__(self, inner: RateLimiter, on_refused: Callable[[str], None]) -> None:
        self._inner = inner
        self._on_refused = on_refused

    async def hit(self, limit: str, *key: str, cost: int = 1) -> RateDecision:
        decision = await self._inner.hit(limit, *key, cost=cost)
        if not decision.allowed:
            self._on_refused(key[0] if key else "")
        return decision

    async def charge(self, charges: Sequence[Charge], *key: str) -> RateDecision:
        decision = await self._inner.charge(charges, *key)
        if not decision.allowed:
            self._on_refused(charges[decision.refused_by or 0].name)
        return decision

    async def close(self) -> None:
        await self._inner.close()


def points_budget(points_limit: str, score_limit: str, max_points: int) -> str:
    """The per-user points budget: `points_limit` when set, else derived so that the canonical
    route's reach is unchanged (the score limit's count × the catalogue's highest points, over
    the same window: `60/minute` and 100 points give `6000/minute`). Routes that let the client
    choose an increment are thereby held to the same reach.

    A budget smaller than one event of the catalogue's highest points would refuse that action
    for ever: a configuration error, raised here at start-up."""
    if not points_limit:
        item = parse(score_limit)
        return f"{item.amount * max_points}/{item.multiples} {item.GRANULARITY.name}"
    if parse(points_limit).amount < max_points:
        raise ValueError(
            f"SCOREBOARD_RATE_LIMIT_POINTS={points_limit!r} is below the catalogue's highest "
            f"points ({max_points}): that action could never be scored."
        )
    return points_limit
