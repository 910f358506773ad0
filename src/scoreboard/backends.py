"""Backends are chosen here, once, from URLs; nothing else imports an implementation.

database URL: `sqlite[+aiosqlite]:///path` or `postgresql[+asyncpg]://...` → SqlStore.
redis URL: empty → in-process memory index, broker and rate limits (one process only);
`redis://` / `rediss://` / `unix://` → Redis index, broker and rate-limit storage;
`redis+cluster://host:port[,host:port...]` → the same on a Redis Cluster
(`realtime.redis_cluster`).
Imports are lazy so the embedded default never loads what it does not use.

With Redis, every call is bounded by `redis_timeout_seconds` and never retried by the client:
a failure must reach the service at once (it then reads from SQL and repairs the index later),
and a Redis that restarted empty must not be talked to as if nothing happened.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from scoreboard.aio import MethodProxy, resume_cancel
from scoreboard.config import Settings
from scoreboard.domain.boards import BoardCatalogue
from scoreboard.domain.errors import ServiceUnavailable
from scoreboard.realtime.base import (
    Broker,
    Charge,
    RankIndex,
    RankIndexes,
    RateDecision,
    RateLimiter,
)
from scoreboard.realtime.redis_cluster import is_cluster_url, parse_cluster_url
from scoreboard.realtime.redis_shared import SharedRedisIndex as SharedRedisIndex  # re-export
from scoreboard.store.base import Store

if TYPE_CHECKING:
    import redis.asyncio as aioredis

log = logging.getLogger(__name__)

REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+cluster://")


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
    indexes: RankIndexes
    broker: Broker
    limiter: RateLimiter
    redis_ping: Callable[[], Awaitable[Any]] | None
    boards: BoardCatalogue
    close_extra: Callable[[], Awaitable[None]] | None = None

    async def close(self) -> None:
        await self.broker.close()
        await self.indexes.close()
        await self.limiter.close()
        await self.store.close()
        if self.close_extra is not None:
            await self.close_extra()


async def open_store(
    settings: Settings, *, migrate: bool = True, boards: BoardCatalogue | None = None
) -> Store:
    from scoreboard.store.migrate import run_migrations
    from scoreboard.store.sql import SqlStore

    url = normalize_database_url(settings.resolved_database_url())
    if migrate:
        await run_migrations(url)
    catalogue = boards or settings.board_catalogue()
    return await SqlStore.open(url, timeout=settings.db_timeout_seconds, boards=catalogue)


# `on_error(backend, operation)`: a failed backend call the service survived (metrics).
ErrorHook = Callable[[str, str], None]


async def open_backends(
    settings: Settings, *, on_error: ErrorHook | None = None, backfill: bool = True
) -> Backends:
    """The backends of `settings`. `backfill`: first fill every board added to the catalogue
    (or redefined) from the event log (`Store.backfill_boards`); `reindex` recomputes the
    boards itself."""
    redis_url = settings.redis_url
    if redis_url and not redis_url.startswith(REDIS_SCHEMES):
        raise ValueError(f"Unsupported Redis URL scheme: {redis_url.split(':', 1)[0]!r}")
    if is_cluster_url(redis_url):
        parse_cluster_url(redis_url)  # a malformed one is refused before anything is opened
    boards = settings.board_catalogue()
    store = await open_store(settings, boards=boards)
    if backfill:
        await store.backfill_boards()
    if not redis_url:
        from scoreboard.realtime.limiter import LimitsRateLimiter
        from scoreboard.realtime.memory import MemoryBroker, MemoryRankIndexes

        return Backends(
            store,
            MemoryRankIndexes(),
            MemoryBroker(),
            LimitsRateLimiter.in_memory(),
            None,
            boards,
        )
    return await _open_redis(settings, store, boards, on_error)


def redis_client(url: str, timeout: float, max_connections: int = 64) -> aioredis.Redis:
    """A client whose every command fails within `timeout` and is never retried. Beyond
    `max_connections` busy connections, callers wait (up to `timeout`) for one to free up.
    A `redis+cluster://` URL gives a `RedisCluster` (`realtime.redis_cluster.cluster_client`:
    typed as `Redis` here, whose commands it has)."""
    import redis.asyncio as aioredis

    from scoreboard.realtime.redis_cluster import cluster_client

    if is_cluster_url(url):
        return cast("aioredis.Redis", cluster_client(url, timeout))
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )
    return aioredis.Redis.from_pool(pool)


def limits_uri(redis_url: str) -> str:
    """The `limits` storage URI naming the same server (its schemes differ for sockets; a
    cluster's is `async+redis+cluster://`)."""
    scheme, rest = redis_url.split("://", 1)
    return {"unix": "async+redis+unix"}.get(scheme, "async+" + scheme) + "://" + rest


async def _open_redis(
    settings: Settings, store: Store, boards: BoardCatalogue, on_error: ErrorHook | None
) -> Backends:
    from scoreboard.realtime.limiter import LimitsRateLimiter, RedisCounters, limits_storage
    from scoreboard.realtime.redis import RedisBroker
    from scoreboard.realtime.redis_broker import server_name

    timeout = settings.redis_timeout_seconds
    client = redis_client(settings.redis_url, timeout)
    prefix = settings.redis_prefix
    storage, close_storage = limits_storage(
        client, limits_uri(settings.redis_url), prefix + "limits", timeout
    )
    counters = RedisCounters(client, prefix + "charges:")
    limiter = FailOpenLimiter(
        LimitsRateLimiter(storage, counters=counters),
        timeout=timeout,
        fail_open=settings.rate_limit_fail_open,
        where=server_name(client),
        on_error=None if on_error is None else lambda: on_error("redis", "rate_limit"),
    )
    broker = RedisBroker(
        settings.redis_url,
        prefix + "events",
        publish_timeout=timeout,
        connect_timeout=max(timeout, 1.0),
        backoff_max=2.0,  # a reconnect attempt every 2 s at worst: cheap, and quick to resync
        ping_interval=max(2.0, 2 * timeout),
        on_lost=None if on_error is None else lambda: on_error("redis", "subscribe"),
    )
    from scoreboard.realtime.redis_indexes import RedisRankIndexes

    indexes: RankIndexes = RedisRankIndexes(client, prefix)
    if on_error is not None:
        indexes = cast(RankIndexes, CountingIndexes(indexes, lambda name: on_error("redis", name)))

    async def close_clients() -> None:
        await client.aclose()
        await close_storage()

    return Backends(store, indexes, broker, limiter, ping(client), boards, close_clients)


def ping(client: aioredis.Redis) -> Callable[[], Awaitable[Any]]:
    """Readiness: PING the server, or every master of a cluster (a master that is down, until
    its replica takes over, makes the process not ready)."""
    from scoreboard.realtime.redis_cluster import is_cluster

    if is_cluster(client):
        command: Callable[..., Awaitable[Any]] = client.execute_command
        return lambda: command("PING", target_nodes="primaries")
    return client.ping


class CountingErrors(MethodProxy):
    """A proxy of the Redis rank index: every failed call (any exception out of a coroutine
    method) is reported to `on_error(method)` and re-raised; the service's own handling of it
    (read from SQL, rebuild) is unchanged."""

    def __init__(self, inner: Any, on_error: Callable[[str], None]) -> None:
        super().__init__(inner)
        self._on_error = on_error

    def _around(
        self, name: str, call: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        on_error, label = self._on_error, f"index.{name}"

        async def counted(*args: Any, **kwargs: Any) -> Any:
            try:
                return await call(*args, **kwargs)
            except Exception:
                on_error(label)
                raise

        return counted


class CountingIndexes(CountingErrors):
    """`CountingErrors` of every view's index too (each wrapped once, while it exists)."""

    def __init__(self, inner: Any, on_error: Callable[[str], None]) -> None:
        super().__init__(inner, on_error)
        self._views: dict[str, RankIndex] = {}

    def index(self, key: str) -> RankIndex:
        view = self._views.get(key)
        if view is None:
            view = cast(RankIndex, CountingErrors(self._inner.index(key), self._on_error))
            self._views[key] = view
        return view

    async def drop(self, key: str) -> None:
        self._views.pop(key, None)
        try:
            await self._inner.drop(key)
        except Exception:
            self._on_error("index.drop")
            raise


class FailOpenLimiter:
    """A `RateLimiter` over shared storage that keeps the service up when the storage is not.

    Each hit is bounded by `timeout`. When the storage fails (Redis unreachable), the request
    is let through (`fail_open`, the default: availability over strict limits for the minutes
    an outage lasts; logged) or refused with `ServiceUnavailable` (`fail_open=False`). After a
    failure the storage is left alone for `cooldown` seconds, so an outage does not add a
    timeout to every request. A storage error never becomes a 500.
    """

    def __init__(
        self,
        inner: RateLimiter,
        *,
        timeout: float,
        cooldown: float = 1.0,
        fail_open: bool = True,
        clock: Callable[[], float] = time.monotonic,
        where: str = "the rate-limit storage",
        on_error: Callable[[], None] | None = None,
    ) -> None:
        self._inner = inner
        self._where = where  # named in the log line (`redis 10.0.0.5:6379`)
        self._on_error = on_error
        self._timeout = timeout
        self._cooldown = cooldown
        self._fail_open = fail_open
        self._clock = clock
        self._down_until = 0.0
        self._failing = False

    async def hit(self, limit: str, *key: str, cost: int = 1) -> RateDecision:
        return await self._guarded(lambda: self._inner.hit(limit, *key, cost=cost))

    async def charge(self, charges: Sequence[Charge], *key: str) -> RateDecision:
        return await self._guarded(lambda: self._inner.charge(charges, *key))

    async def _guarded(self, call: Callable[[], Awaitable[RateDecision]]) -> RateDecision:
        if self._clock() >= self._down_until:
            try:
                async with asyncio.timeout(self._timeout):
                    decision = await call()
                resume_cancel()
            except Exception as exc:  # the storage's errors: limits' StorageError, timeouts
                self._down_until = self._clock() + self._cooldown
                if self._on_error is not None:
                    self._on_error()
                if not self._failing:
                    log.warning(
                        "rate limits: %s failed (%r); failing %s", self._where, exc, self._mode
                    )
                self._failing = True
            else:
                if self._failing:
                    log.info("rate-limit storage works again")
                self._failing = False
                return decision
        if self._fail_open:
            return RateDecision(True, 0)
        raise ServiceUnavailable("Rate limits cannot be checked; retry later.")

    @property
    def _mode(self) -> str:
        return "open (requests are not limited)" if self._fail_open else "closed (503)"

    async def close(self) -> None:
        await self._inner.close()
