"""Backends are chosen here, once, from URLs; nothing else imports an implementation.

database URL: `sqlite[+aiosqlite]:///path` or `postgresql[+asyncpg]://...` → SqlStore.
redis URL: empty → in-process memory index, broker and rate limits (one process only);
`redis://` / `rediss://` / `unix://` → Redis index, broker and rate-limit storage.
Imports are lazy so the embedded default never loads what it does not use.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from scoreboard.config import Settings
from scoreboard.realtime.base import Broker, RankIndex, RateLimiter
from scoreboard.store.base import Store

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def normalize_database_url(url: str) -> str:
    """Accept plain driver-less URLs and pick the async driver."""
    for plain, driver in (
        ("sqlite:///", "sqlite+aiosqlite:///"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    if url.startswith(("sqlite+aiosqlite:///", "postgresql+asyncpg://")):
        return url
    raise ValueError(f"Unsupported database URL scheme: {url.split(':', 1)[0]!r}")


@dataclass
class Backends:
    store: Store
    index: RankIndex
    broker: Broker
    limiter: RateLimiter
    redis_ping: Callable[[], Awaitable[Any]] | None
    close_extra: Callable[[], Awaitable[None]] | None = None

    async def close(self) -> None:
        await self.broker.close()
        await self.index.close()
        await self.limiter.close()
        await self.store.close()
        if self.close_extra is not None:
            await self.close_extra()


async def open_store(settings: Settings, *, migrate: bool = True) -> Store:
    from scoreboard.store.migrate import run_migrations
    from scoreboard.store.sql import SqlStore

    url = normalize_database_url(settings.resolved_database_url())
    if migrate:
        await run_migrations(url)
    return await SqlStore.open(url, timeout=settings.db_timeout_seconds)


async def open_backends(settings: Settings) -> Backends:
    redis_url = settings.redis_url
    if redis_url and not redis_url.startswith(REDIS_SCHEMES):
        raise ValueError(f"Unsupported Redis URL scheme: {redis_url.split(':', 1)[0]!r}")
    store = await open_store(settings)
    if not redis_url:
        from scoreboard.realtime.limiter import LimitsRateLimiter
        from scoreboard.realtime.memory import MemoryBroker, MemoryRankIndex

        return Backends(
            store, MemoryRankIndex(), MemoryBroker(), LimitsRateLimiter.in_memory(), None
        )
    return await _open_redis(settings, store)


async def _open_redis(settings: Settings, store: Store) -> Backends:
    import redis.asyncio as aioredis

    from scoreboard.realtime.limiter import LimitsRateLimiter
    from scoreboard.realtime.redis import RedisBroker, RedisRankIndex

    client = aioredis.from_url(settings.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
    prefix = settings.redis_prefix
    return Backends(
        store,
        RedisRankIndex(client, prefix),
        RedisBroker(settings.redis_url, prefix + "events"),
        LimitsRateLimiter.for_redis(settings.redis_url, prefix),
        client.ping,
        client.aclose,
    )
