"""Reads of one view (a board, one period, one region): from its rank index while the index is
healthy, from SQL otherwise, from the last top seen when the database is gone too.

A `LiveView` is a view that has a rank index (current and recent periods, see
`service.leaderboard`); older periods are read from SQL only (`SqlView`). Both answer the same
reads, so callers never care which one they hold. Index upkeep of a live view (when its index
may be used, rebuilds) is its `IndexKeeper`'s.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

from scoreboard.domain.boards import View
from scoreboard.domain.errors import ServiceUnavailable, ValidationFailed
from scoreboard.domain.ranking import RankedEntry, Standing
from scoreboard.realtime.base import RankIndex
from scoreboard.service.topcache import Cached, TopCache
from scoreboard.service.upkeep import IndexKeeper, ranked
from scoreboard.store.base import Store

log = logging.getLogger(__name__)

Read = tuple[list[RankedEntry], int, datetime]


class ViewSource:
    """One view of the store, as an `IndexKeeper` reads it (`upkeep.Standings`)."""

    def __init__(self, store: Store, view: View) -> None:
        self._store = store
        self.view = view

    def iter_standings(self, page_size: int = 1000) -> AsyncIterator[list[Standing]]:
        return self._store.iter_view_standings(self.view, page_size)

    async def standings_page(self, limit: int, offset: int) -> tuple[list[Standing], int]:
        return await self._store.view_page(self.view, limit, offset)

    async def standing_of(self, user_id: str) -> tuple[Standing, int] | None:
        return await self._store.view_standing_of(self.view, user_id)


class SqlView:
    """A view without an index: every read is SQL (old periods)."""

    live = False

    def __init__(self, store: Store, view: View, cache: TopCache) -> None:
        self.view = view
        self.key = view.key
        self.source = ViewSource(store, view)
        self.cache = cache

    async def read(self, limit: int, offset: int) -> Read:
        generation = self.cache.generation(self.key)
        try:
            standings, total = await self.source.standings_page(limit, offset)
        except ServiceUnavailable:
            last = self.cache.last_known(self.key, limit, offset)
            if last is None:
                raise
            log.info("database unreachable; serving the last known top of %s", self.key)
            return last.slice(limit, offset), last.total, last.generated_at
        items = ranked(standings, offset)
        return self.keep(limit, offset, items, total, generation, fresh=False)

    def keep(
        self,
        limit: int,
        offset: int,
        items: list[RankedEntry],
        total: int,
        generation: int,
        *,
        fresh: bool,
    ) -> Read:
        if offset != 0:
            return items, total, datetime.now(UTC)
        cached: Cached = self.cache.put(
            self.key, limit, items, total, generation=generation, fresh=fresh
        )
        return items, total, cached.generated_at

    async def entry_of(self, user_id: str) -> RankedEntry | None:
        found = await self.source.standing_of(user_id)
        if found is None:
            return None
        standing, rank = found
        return RankedEntry(rank, standing.user_id, standing.display_name, standing.score)

    async def around(self, user_id: str, neighbours: int) -> list[RankedEntry]:
        """The user's entry with up to `neighbours` above and below; [] when not on it."""
        found = await self.source.standing_of(user_id)
        if found is None:
            return []
        _, rank = found
        start = max(1, rank - neighbours)
        page, _ = await self.source.standings_page(rank + neighbours - start + 1, start - 1)
        return ranked(page, start - 1)


class LiveView(SqlView):
    """A view with a rank index; see the module docstring for the order of reads."""

    live = True

    def __init__(
        self,
        store: Store,
        view: View,
        cache: TopCache,
        index: RankIndex,
        *,
        check_seconds: float,
        on_new_index: Callable[[View, bool], Awaitable[None]],
        on_rebuild: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(store, view, cache)
        self.index = index

        async def new_index(here: bool) -> None:
            await on_new_index(view, here)

        self.keeper = IndexKeeper(
            self.source,
            index,
            check_seconds=check_seconds,
            on_new_index=new_index,
            on_rebuild=on_rebuild,
        )

    async def read(self, limit: int, offset: int) -> Read:
        if self.keeper.ok:
            cached = self.cache.fresh(self.key, limit, offset)
            if cached is not None:
                return cached.slice(limit, offset), cached.total, cached.generated_at
            generation = self.cache.generation(self.key)
            try:
                items, total = await self.index.page(limit, offset)
            except ValueError as exc:  # the caller's argument (RankIndex contract), not a failure
                raise ValidationFailed(
                    "This page cannot be read.", details={"field": "offset"}
                ) from exc
            except Exception as exc:
                self.keeper.broken(f"read failed: {exc!r}")
            else:
                return self.keep(limit, offset, items, total, generation, fresh=True)
        return await super().read(limit, offset)

    async def entry_of(self, user_id: str) -> RankedEntry | None:
        if self.keeper.ok:
            try:
                return await self.index.entry_of(user_id)
            except Exception as exc:
                self.keeper.broken(f"read failed: {exc!r}")
        return await super().entry_of(user_id)

    async def around(self, user_id: str, neighbours: int) -> list[RankedEntry]:
        if self.keeper.ok:
            try:
                return await self.index.around(user_id, neighbours)
            except Exception as exc:
                self.keeper.broken(f"read failed: {exc!r}")
        return await super().around(user_id, neighbours)
