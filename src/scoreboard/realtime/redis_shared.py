"""`SharedRedisIndex`: the Redis rank index of one board as several processes share it.

Redis is imported lazily (on first construction), so importing this module, as
`scoreboard.backends` does, costs the embedded default nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from scoreboard.aio import resume_cancel
from scoreboard.domain.ranking import RankedEntry, Standing

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from redis.asyncio.lock import Lock

    from scoreboard.realtime.redis_index import ScriptCall

log = logging.getLogger(__name__)

LOCK_SECONDS = 30.0  # TTL of the rebuild lock; the holder extends it every third of that


class SharedRedisIndex:
    """The Redis `RankIndex` plus what the service needs to share it between processes.

    A `checked` `RedisRankIndex` (reads raise `ResponseError` when the generation marker is
    missing, in the same round trip, so a lost index is never served). Added here (keys as
    documented in `realtime.redis_index`):
    - `state()`: (marker, rebuild lock held by anyone) in one round trip, which every process
      polls to notice a rebuild by another process, or a loss;
    - `rebuild_lock()`: `SET NX PX` through redis-py's `Lock`, extended while held, so that
      one process at a time rebuilds.
    """

    def __init__(self, client: aioredis.Redis, prefix: str, board: str = "global") -> None:
        from scoreboard.realtime.redis_broker import server_name
        from scoreboard.realtime.redis_index import RedisRankIndex

        self._inner = RedisRankIndex(client, prefix, board, checked=True)
        self._client = client
        self.where = server_name(client)  # for log lines (`service.upkeep`)
        self._marker, self._lock_key = self._inner.key("marker"), self._inner.key("lock")

    # -- RankIndex: RedisRankIndex's, checked ------------------------------------------------
    async def replace_all(self, pages: AsyncIterator[list[Standing]]) -> int:
        count = await self._inner.replace_all(pages)
        resume_cancel()
        return count

    async def apply(self, standing: Standing, version: int) -> int | None:
        rank = await self._inner.apply(standing, version)
        resume_cancel()
        return rank

    async def apply_many(self, updates: Sequence[tuple[Standing, int]]) -> list[int | None]:
        ranks = await self._inner.apply_many(updates)
        resume_cancel()
        return ranks

    async def remove(self, user_id: str) -> None:
        await self._inner.remove(user_id)
        resume_cancel()

    async def restore(self, user_id: str) -> None:
        await self._inner.restore(user_id)
        resume_cancel()

    async def rename(self, user_id: str, display_name: str) -> None:
        await self._inner.rename(user_id, display_name)
        resume_cancel()

    async def top(self, limit: int, offset: int = 0) -> list[RankedEntry]:
        entries = await self._inner.top(limit, offset)
        resume_cancel()
        return entries

    async def count(self) -> int:
        count = await self._inner.count()
        resume_cancel()
        return count

    async def page(self, limit: int, offset: int = 0) -> tuple[list[RankedEntry], int]:
        page = await self._inner.page(limit, offset)
        resume_cancel()
        return page

    async def entry_of(self, user_id: str) -> RankedEntry | None:
        entry = await self._inner.entry_of(user_id)
        resume_cancel()
        return entry

    async def around(self, user_id: str, neighbours: int) -> list[RankedEntry]:
        entries = await self._inner.around(user_id, neighbours)
        resume_cancel()
        return entries

    async def close(self) -> None:
        await self._inner.close()

    # -- one of many boards (`realtime.redis_indexes`) ----------------------------------------
    def apply_many_call(self, updates: Sequence[tuple[Standing, int]]) -> ScriptCall:
        """The unsent script call of `apply_many(updates)` (see `RedisRankIndex`)."""
        return self._inner.apply_many_call(updates)

    async def delete(self) -> None:
        """UNLINK every key of this board: entries, names, versions, tombstones, marker,
        rebuild lock, and the staged keys of the rebuild its `rebuild` key announces (older
        leftovers of a crashed rebuild expire within `redis_rebuild.STAGING_TTL`). Two round
        trips. Only for a board no process still writes to or rebuilds: a rebuild running
        meanwhile would swap its staged keys back in."""
        from scoreboard.realtime.redis_rebuild import staged_keys

        staged = await self._client.get(self._inner.key("rebuild"))
        names = [*self._inner.key_names(), self._lock_key]
        if staged is not None:
            names += staged_keys(staged.decode() if isinstance(staged, bytes) else staged)
        await self._client.unlink(*names)
        resume_cancel()

    # -- sharing ---------------------------------------------------------------------------
    async def state(self) -> tuple[str | None, bool]:
        """(generation marker or None, whether any process holds the rebuild lock)."""
        marker, lock = await self._client.mget(self._marker, self._lock_key)
        resume_cancel()
        text = marker.decode() if isinstance(marker, bytes) else marker
        return text, lock is not None

    @contextlib.asynccontextmanager
    async def rebuild_lock(self) -> AsyncIterator[bool]:
        """Yields True while this process holds the lock, False when another one does."""
        from redis.exceptions import LockError, RedisError

        lock = self._client.lock(
            self._lock_key, timeout=LOCK_SECONDS, blocking=False, thread_local=False
        )
        acquired = await lock.acquire()
        resume_cancel()
        if not acquired:
            yield False
            return
        keeper = asyncio.create_task(_keep_lock(lock), name="rebuild-lock-keeper")
        try:
            yield True
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            with contextlib.suppress(LockError, RedisError, OSError):  # it expires anyway
                await lock.release()


async def _keep_lock(lock: Lock) -> None:
    from redis.exceptions import LockError, RedisError

    while True:
        await asyncio.sleep(LOCK_SECONDS / 3)
        try:
            await lock.reacquire()
        except (LockError, RedisError, OSError):
            log.warning("the rebuild lock could not be extended", exc_info=True)
