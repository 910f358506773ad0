"""Leaderboard reads, and what the board does after a write.

The store is the truth; the rank index is derived. Writes update the index only after commit
and then publish "scope changed" to every process. Any failure of the index or broker after a
commit is logged and repaired (by a rebuild), never reported to the client whose event is
already durable.

Reads, in order: the cached top (fresh, while the index is healthy), the index, the database
(the index is unusable or being rebuilt: ranks are never wrong, only slower), and, when the
database cannot be reached either, the last top this process saw (`TopCache.last_known`).

Publishing change notices is `service.notices.ChangeNotices`'s; index upkeep (when the index
may be used, rebuilds, several processes sharing one index) is `service.upkeep.IndexKeeper`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import orjson

from scoreboard.domain.errors import InvalidScope, ServiceUnavailable, ValidationFailed
from scoreboard.domain.ranking import RankedEntry
from scoreboard.realtime.base import Broker, RankIndex
from scoreboard.service.notices import ChangeNotices
from scoreboard.service.topcache import Cached, TopCache
from scoreboard.service.upkeep import IndexKeeper, ranked
from scoreboard.store.base import EventRecord, Store

log = logging.getLogger(__name__)

T = TypeVar("T")

SCOPES = frozenset({"global"})
MAX_LIMIT = 100
MAX_AROUND = 50
# Deeper pages are refused (400), not served empty: no board is near a billion users, and a
# bound keeps every offset well inside what SQL (int64) and Redis accept as an argument.
MAX_OFFSET = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Page:
    scope: str
    limit: int
    offset: int
    total: int
    items: list[RankedEntry]
    generated_at: datetime


@dataclass(frozen=True, slots=True)
class MyStanding:
    user_id: str
    display_name: str
    score: int
    rank: int | None
    around: list[RankedEntry]


def check_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise InvalidScope(f"Unknown leaderboard scope {scope!r}; known: {sorted(SCOPES)}.")
    return scope


def check_range(name: str, value: int, low: int, high: int | None = None) -> int:
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValidationFailed(f"{name} must be {bound}.", details={"field": name})
    return value


class LeaderboardService:
    def __init__(
        self,
        store: Store,
        index: RankIndex,
        broker: Broker,
        *,
        cache: TopCache | None = None,
        check_seconds: float = 0.5,
        on_rebuild: Callable[[str], None] | None = None,
        on_publish_failed: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._index = index
        self.cache = cache or TopCache()
        self.keeper = IndexKeeper(
            store,
            index,
            check_seconds=check_seconds,
            on_new_index=self._new_index,
            on_rebuild=on_rebuild,
        )
        self.notices = ChangeNotices(broker, on_publish_failed)

    @property
    def index_ready(self) -> bool:
        return self.keeper.ok

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Publish change notices from a task, coalesced (see `service.notices`)."""
        self.notices.start()

    async def close(self) -> None:
        await self.notices.close()

    async def maintain(self, *, full: bool = False) -> None:
        """One step of index upkeep (see `IndexKeeper.maintain`)."""
        await self.keeper.maintain(full=full)

    async def rebuild(self, on_page: Callable[[int], None] | None = None) -> int | None:
        """Rebuild the index from the store and tell every process; None when another
        process is rebuilding it (see `IndexKeeper.rebuild`)."""
        return await self.keeper.rebuild(on_page)

    async def _new_index(self, here: bool) -> None:
        self.cache.invalidate()
        if here:  # the board may have changed: every process's clients get the new one
            await self.publish_change("global")

    # -- writes --------------------------------------------------------------------------------
    async def committed(self, events: Sequence[EventRecord]) -> list[int | None]:
        """After a batch's commit: update the index in one call and tell every process once.
        Never raises. Returns each event's user's rank once the batch is applied (the same
        index round trip), or None when the index cannot tell; `rank_of` then asks the store."""
        if not events:
            return []
        updates = [(event.standing(), event.version) for event in events]
        return await self._changing(self.keeper.update_many(updates))

    async def removed(self, user_id: str) -> None:
        """After a deletion is committed: take the user off the index. Never raises."""
        await self._changing(self.keeper.remove(user_id))

    async def renamed(self, user_id: str, display_name: str) -> None:
        """After a display name change is committed: show it on the board. Never raises."""
        await self._changing(self.keeper.rename(user_id, display_name))

    async def _changing(self, step: Awaitable[T]) -> T:
        """Run one index step of a committed change, then tell every process. The cache is
        invalidated before and after: a read racing the step must not be cached as fresh."""
        self.cache.invalidate("global")
        result = await step
        self.cache.invalidate("global")
        await self.publish_change("global")
        return result

    async def publish_change(self, scope: str) -> None:
        """Tell every process that `scope` changed (`ChangeNotices`). Never raises."""
        await self.notices.publish(scope)

    def changed_elsewhere(self, message: bytes) -> None:
        """A change notice from the broker (any process): the cached top is stale."""
        try:
            scope = orjson.loads(message).get("scope")
        except (orjson.JSONDecodeError, AttributeError):
            scope = None
        self.cache.invalidate(scope if isinstance(scope, str) else None)

    def resynced(self) -> None:
        """The broker reconnected: notices may have been lost, nothing cached is fresh."""
        self.cache.invalidate()

    # -- reads ---------------------------------------------------------------------------------
    async def top(self, scope: str, limit: int, offset: int = 0) -> list[RankedEntry]:
        check_scope(scope)
        check_range("offset", offset, 0, MAX_OFFSET)
        items, _, _ = await self._read(scope, limit, offset)
        return items

    async def page(self, scope: str, limit: int, offset: int) -> Page:
        check_scope(scope)
        check_range("limit", limit, 1, MAX_LIMIT)
        check_range("offset", offset, 0, MAX_OFFSET)
        items, total, generated_at = await self._read(scope, limit, offset)
        return Page(scope, limit, offset, total, items, generated_at)

    async def page_json(self, scope: str, limit: int) -> bytes:
        """`page(scope, limit, 0)` as the canonical JSON body, pre-encoded by the cache."""
        check_scope(scope)
        check_range("limit", limit, 1, MAX_LIMIT)
        await self._read(scope, limit, 0)
        cached = self.cache.fresh(scope, limit) or self.cache.last_known(scope, limit)
        assert cached is not None  # `_read` at offset 0 always stores what it read
        return cached.page_json(limit)

    async def _read(
        self, scope: str, limit: int, offset: int
    ) -> tuple[list[RankedEntry], int, datetime]:
        if self.keeper.ok:
            cached = self.cache.fresh(scope, limit, offset)
            if cached is not None:
                return cached.slice(limit, offset), cached.total, cached.generated_at
            generation = self.cache.generation(scope)
            try:
                items, total = await self._index.page(limit, offset)
            except ValueError as exc:  # the caller's argument (RankIndex contract), not a failure
                raise ValidationFailed(
                    "This page cannot be read.", details={"field": "offset"}
                ) from exc
            except Exception as exc:
                self.keeper.broken(f"read failed: {exc!r}")
            else:
                return self._keep(scope, limit, offset, items, total, generation, fresh=True)
        generation = self.cache.generation(scope)
        try:
            standings, total = await self._store.standings_page(limit, offset)
        except ServiceUnavailable:
            last = self.cache.last_known(scope, limit, offset)
            if last is None:
                raise
            log.info("database unreachable; serving the last known top of %s", scope)
            return last.slice(limit, offset), last.total, last.generated_at
        items = ranked(standings, offset)
        return self._keep(scope, limit, offset, items, total, generation, fresh=False)

    def _keep(
        self,
        scope: str,
        limit: int,
        offset: int,
        items: list[RankedEntry],
        total: int,
        generation: int,
        *,
        fresh: bool,
    ) -> tuple[list[RankedEntry], int, datetime]:
        if offset != 0:
            return items, total, datetime.now(UTC)
        cached: Cached = self.cache.put(
            scope, limit, items, total, generation=generation, fresh=fresh
        )
        return items, total, cached.generated_at

    async def rank_of(self, user_id: str) -> int | None:
        """The user's current rank (index, or SQL when the index is unavailable)."""
        found = await self.score_and_rank(user_id)
        return None if found is None else found[1]

    async def score_and_rank(self, user_id: str) -> tuple[int, int] | None:
        """The user's current (score, rank), None when unranked (index, or SQL when the index
        is unavailable)."""
        if self.keeper.ok:
            try:
                entry = await self._index.entry_of(user_id)
                return None if entry is None else (entry.score, entry.rank)
            except Exception as exc:
                self.keeper.broken(f"read failed: {exc!r}")
        found = await self._store.standing_of(user_id)
        return None if found is None else (found[0].score, found[1])

    async def mine(self, scope: str, user_id: str, display_name: str, around: int) -> MyStanding:
        check_scope(scope)
        check_range("around", around, 0, MAX_AROUND)
        if self.keeper.ok:
            try:
                return await self._mine_from_index(user_id, display_name, around)
            except Exception as exc:
                self.keeper.broken(f"read failed: {exc!r}")
        return await self._mine_from_sql(user_id, display_name, around)

    async def _mine_from_index(self, user_id: str, name: str, around: int) -> MyStanding:
        neighbours = await self._index.around(user_id, around)  # includes the user; [] if absent
        entry = next((e for e in neighbours if e.user_id == user_id), None)
        if entry is None:
            return MyStanding(user_id, name, 0, None, [])
        return MyStanding(user_id, entry.display_name, entry.score, entry.rank, neighbours)

    async def _mine_from_sql(self, user_id: str, name: str, around: int) -> MyStanding:
        found = await self._store.standing_of(user_id)
        if found is None:
            return MyStanding(user_id, name, 0, None, [])
        standing, rank = found
        start = max(1, rank - around)
        page, _ = await self._store.standings_page(rank + around - start + 1, start - 1)
        neighbours = ranked(page, start - 1)
        return MyStanding(user_id, standing.display_name, standing.score, rank, neighbours)
