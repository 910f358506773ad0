"""The one way the services apply a rate limit."""

from __future__ import annotations

from scoreboard.domain.errors import RateLimited
from scoreboard.realtime.base import RateLimiter


async def enforce(limiter: RateLimiter, limit: str, *key: str, message: str | None = None) -> None:
    """Count one hit of `key` against `limit`; raise `RateLimited` (with its retry-after)
    when the limit refuses it."""
    decision = await limiter.hit(limit, *key)
    if not decision.allowed:
        raise RateLimited(decision.retry_after, message)
