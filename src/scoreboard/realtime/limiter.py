"""`RateLimiter` on the `limits` library: the same code for memory and Redis storage.

Moving-window counting, so a burst at a window boundary cannot double the allowance.
"""

from __future__ import annotations

import math
import time
from functools import lru_cache

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from scoreboard.realtime.base import RateDecision


@lru_cache(maxsize=64)
def _parse(limit: str) -> RateLimitItem:
    return parse(limit)


class LimitsRateLimiter:
    def __init__(self, storage: Storage, namespace: str = "scoreboard") -> None:
        self._storage = storage
        self._strategy = MovingWindowRateLimiter(storage)
        self._namespace = namespace

    @classmethod
    def in_memory(cls) -> LimitsRateLimiter:
        return cls(MemoryStorage())

    async def hit(self, limit: str, *key: str, cost: int = 1) -> RateDecision:
        item = _parse(limit)
        if await self._strategy.hit(item, self._namespace, *key, cost=cost):
            return RateDecision(True, 0)
        stats = await self._strategy.get_window_stats(item, self._namespace, *key)
        return RateDecision(False, max(1, math.ceil(stats.reset_time - time.time())))

    async def close(self) -> None:
        return None
