"""`LeaderboardService`'s reads: pages, the pre-encoded top, a user's standing, the friends
board, a user's standing on given views. Each resolves what it names (`target`) and reads the
view through `reader` (its index, or SQL); `service.leaderboard` owns which views are live.

A mixin on purpose: the reads share the service's views, cache and store, and being methods
of the service keeps one object for the API to call.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from scoreboard.domain.boards import View
from scoreboard.domain.ranking import RankedEntry
from scoreboard.domain.times import utcnow
from scoreboard.service.targets import (
    MAX_AROUND,
    MAX_LIMIT,
    MAX_OFFSET,
    MyStanding,
    OnBoard,
    Page,
    Target,
    check_range,
)
from scoreboard.service.topcache import TopCache
from scoreboard.service.views import SqlView
from scoreboard.store.base import Store


class BoardReads:
    """The reads; `LeaderboardService` provides the members below."""

    _store: Store
    cache: TopCache
    _heads: dict[tuple[str, str, str], bytes]

    def _head_json(self, target: Target) -> bytes:
        """`target.head()` encoded, once per board, period and current period (what it
        depends on): the top's body is otherwise all pre-encoded."""
        current = target.board.period_id_at(target.now_us)
        key = (target.scope, target.period.id, current)
        head = self._heads.get(key)
        if head is None:
            if len(self._heads) > 1000:  # periods pass: forget the old ones now and then
                self._heads.clear()
            head = self._heads[key] = orjson.dumps(target.head())
        return head

    def target(self, scope: str, period: str | None = None, region: str | None = None) -> Target:
        raise NotImplementedError

    def reader(self, view: View, now_us: int | None = None) -> SqlView:
        raise NotImplementedError

    def _default_view(self) -> View:
        raise NotImplementedError

    # -- reads ---------------------------------------------------------------------------------
    async def top(self, scope: str, limit: int, offset: int = 0) -> list[RankedEntry]:
        """The current top of `scope` (compatibility routes: the board's current period)."""
        check_range("offset", offset, 0, MAX_OFFSET)
        target = self.target(scope)
        items, _, _ = await self.reader(target.view, target.now_us).read(limit, offset)
        return items

    async def view_top(self, view: View, limit: int) -> list[RankedEntry]:
        items, _, _ = await self.reader(view).read(limit, 0)
        return items

    async def page(
        self,
        scope: str,
        limit: int,
        offset: int,
        *,
        period: str | None = None,
        region: str | None = None,
    ) -> Page:
        check_range("limit", limit, 1, MAX_LIMIT)
        check_range("offset", offset, 0, MAX_OFFSET)
        target = self.target(scope, period, region)
        items, total, generated_at = await self.reader(target.view, target.now_us).read(
            limit, offset
        )
        return Page(target, limit, offset, total, items, generated_at)

    async def page_json(
        self, scope: str, limit: int, *, period: str | None = None, region: str | None = None
    ) -> bytes:
        """`page(scope, limit, 0)` as the canonical JSON body, its items pre-encoded by the
        cache."""
        check_range("limit", limit, 1, MAX_LIMIT)
        target = self.target(scope, period, region)
        reader = self.reader(target.view, target.now_us)
        await reader.read(limit, 0)
        key = target.view.key
        cached = self.cache.fresh(key, limit) or self.cache.last_known(key, limit)
        assert cached is not None  # a read at offset 0 always stores what it read
        return cached.page_json(limit, self._head_json(target))

    async def rank_of(self, user_id: str) -> int | None:
        """The user's current rank on the default board (index, or SQL; a quarantined user's
        as if visible: see `_entry`)."""
        entry = await self._entry(self._default_view(), user_id)
        return None if entry is None else entry.rank

    async def _entry(self, view: View, user_id: str) -> RankedEntry | None:
        """The user's entry on the view as they see it: on the board, or (not on it) their
        own standing when quarantined, ranked as if visible (they are not told)."""
        entry = await self.reader(view).entry_of(user_id)
        if entry is not None:
            return entry
        found = await self._store.view_standing_of(view, user_id, hidden=True)
        if found is None:
            return None
        standing, rank = found
        return RankedEntry(rank, user_id, standing.display_name, standing.score)

    async def score_and_rank(self, user_id: str) -> tuple[int, int] | None:
        """The user's (score, rank) on the default board, None when unranked."""
        entry = await self.reader(self._default_view()).entry_of(user_id)
        return None if entry is None else (entry.score, entry.rank)

    async def on_views(self, user_id: str, views: Sequence[View]) -> list[OnBoard]:
        """The user's score and rank on each of `views` (what an event's answer lists)."""
        found = []
        for view in views:
            entry = await self._entry(view, user_id)
            score, rank = (0, None) if entry is None else (entry.score, entry.rank)
            found.append(OnBoard(view.board_id, view.period_id, score, rank))
        return found

    async def mine(
        self,
        scope: str,
        user_id: str,
        display_name: str,
        around: int,
        *,
        period: str | None = None,
        region: str | None = None,
    ) -> MyStanding:
        check_range("around", around, 0, MAX_AROUND)
        target = self.target(scope, period, region)
        neighbours = await self.reader(target.view, target.now_us).around(user_id, around)
        entry = next((e for e in neighbours if e.user_id == user_id), None)
        if entry is None:
            return await self._mine_hidden(target, user_id, display_name)
        return MyStanding(user_id, entry.display_name, entry.score, entry.rank, neighbours, target)

    async def _mine_hidden(self, target: Target, user_id: str, name: str) -> MyStanding:
        """Not on the board: never scored there, or quarantined — who still sees their own
        standing, ranked as if visible, alone in `around_me` (API.md section 6: they are not
        told). One indexed query."""
        found = await self._store.view_standing_of(target.view, user_id, hidden=True)
        if found is None:
            return MyStanding(user_id, name, 0, None, [], target)
        standing, rank = found
        mine = RankedEntry(rank, user_id, standing.display_name, standing.score)
        return MyStanding(user_id, standing.display_name, standing.score, rank, [mine], target)

    async def friends(
        self,
        scope: str,
        user_ids: Sequence[str],
        limit: int,
        *,
        period: str | None = None,
        region: str | None = None,
    ) -> Page:
        """The board ranked among `user_ids` only (ranks 1..n in the same order), from SQL:
        a friends list is at most `MAX_FRIENDS` + 1 users, one indexed query."""
        check_range("limit", limit, 1, MAX_LIMIT)
        target = self.target(scope, period, region)
        standings = await self._store.view_standings_of(target.view, user_ids)
        items = [
            RankedEntry(i + 1, s.user_id, s.display_name, s.score)
            for i, s in enumerate(standings[:limit])
        ]
        return Page(target, limit, 0, len(standings), items, utcnow())
