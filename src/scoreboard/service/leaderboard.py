"""Leaderboards: every board of the catalogue, its periods and regions, and what the boards do
after a write.

The store is the truth; rank indexes are derived. A read names a board (`scope`), a period
(`current`, `previous` or an id) and, on a partitioned board, a region: that is one `View`.
Views of the current and the previous period of a board are live (`service.views.LiveView`:
a rank index, kept by its `IndexKeeper`); older periods are read from SQL only, so memory holds
two periods of each board, whatever the history.

After a batch's commit, every view its events counted on is updated in ONE index round trip
(`RankIndexes.apply_views`), and every process is told which views changed
(`service.notices.ChangeNotices`). A failure of the index or broker after a commit is logged
and repaired by a rebuild, never reported to the client whose event is already durable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from scoreboard.domain.boards import BoardCatalogue, View, to_us
from scoreboard.domain.errors import ValidationFailed
from scoreboard.domain.ranking import Standing
from scoreboard.realtime.base import Broker, RankIndex, RankIndexes
from scoreboard.service.batch_ranks import fill_from_store
from scoreboard.service.board_reads import BoardReads
from scoreboard.service.notices import ChangeNotices
from scoreboard.service.targets import (
    DAY_US,
    Clock,
    Target,
    system_clock,
)
from scoreboard.service.topcache import TopCache
from scoreboard.service.upkeep import IndexKeeper
from scoreboard.service.views import LiveView, SqlView
from scoreboard.store.base import BoardStanding, EventRecord, Store

log = logging.getLogger(__name__)

SWEEP_SECONDS = 60.0  # how often views of old periods are dropped from the rank indexes
PRUNE_SECONDS = 3600.0  # how often rows of periods past the retention are deleted


class LeaderboardService(BoardReads):
    def __init__(
        self,
        store: Store,
        indexes: RankIndexes,
        broker: Broker,
        *,
        catalogue: BoardCatalogue | None = None,
        clock: Clock = system_clock,
        cache: TopCache | None = None,
        check_seconds: float = 0.5,
        retention_days: int = 400,
        on_rebuild: Callable[[str], None] | None = None,
        on_publish_failed: Callable[[], None] | None = None,
    ) -> None:
        """`retention_days`: past periods stay readable this long after they end; their rows
        are deleted after that (`prune`)."""
        self._store = store
        self._retention_us = retention_days * DAY_US
        self._pruned_at: float | None = None
        self._indexes = indexes
        self.catalogue = catalogue or BoardCatalogue.default()
        self.clock = clock
        self.cache = cache or TopCache()
        self._check_seconds = check_seconds
        self._on_rebuild = on_rebuild
        self.notices = ChangeNotices(broker, on_publish_failed)
        self._views: dict[str, LiveView] = {}
        self._heads: dict[tuple[str, str, str], bytes] = {}
        self._swept_at = 0.0
        total = self.catalogue.total
        self._default = total or next(iter(self.catalogue))
        for board in self.catalogue:  # the current periods are ready (rebuilt) at start-up
            if board.partition is None:
                self._live(board.view_at(clock(), None) or View(board.board_id, "all"))

    # -- views ---------------------------------------------------------------------------------
    def target(self, scope: str, period: str | None = None, region: str | None = None) -> Target:
        """Resolve what a read names (`InvalidScope`, `ValidationFailed` when it cannot be)."""
        board = self.catalogue.get(scope)
        now = self.clock()
        resolved = board.resolve(period, now)
        if resolved.ends_at is not None and to_us(resolved.ends_at) <= now - self._retention_us:
            days = self._retention_us // DAY_US
            raise ValidationFailed(
                f"Period {resolved.id} of {scope!r} ended more than {days} days ago; past "
                f"periods are kept {days} days (SCOREBOARD_PERIOD_RETENTION_DAYS).",
                details={"field": "period"},
            )
        if board.partition is None:
            if region:
                raise ValidationFailed(
                    f"Board {scope!r} has no regions.", details={"field": "region"}
                )
            region = ""
        elif not region:
            raise ValidationFailed(
                f"Board {scope!r} ranks each region apart: give ?region=.",
                details={"field": "region"},
            )
        return Target(board, resolved, View(board.board_id, resolved.id, region), now)

    def _is_recent(self, view: View, now_us: int) -> bool:
        """Current or previous period of its board: those views have a rank index."""
        board = self.catalogue.get(view.board_id)
        current = board.period_at(now_us)
        if view.period_id == current.id:
            return True
        return (
            current.starts_at is not None and view.period_id == board.resolve("previous", now_us).id
        )

    def _live(self, view: View) -> LiveView:
        live = self._views.get(view.key)
        if live is None:
            live = LiveView(
                self._store,
                view,
                self.cache,
                self._indexes.index(view.key),
                check_seconds=self._check_seconds,
                on_new_index=self._new_index,
                on_rebuild=self._on_rebuild,
            )
            self._views[view.key] = live
        return live

    def reader(self, view: View, now_us: int | None = None) -> SqlView:
        """The view's reads: its live index for recent periods, SQL for older ones."""
        live = self._views.get(view.key)
        if live is not None:
            return live
        if self._is_recent(view, self.clock() if now_us is None else now_us):
            return self._live(view)
        return SqlView(self._store, view, self.cache)

    @property
    def keeper(self) -> IndexKeeper:
        """The default board's keeper (the total board: `global` unless configured otherwise)."""
        return self._live(self._default_view()).keeper

    def _default_view(self) -> View:
        board = self._default
        return board.view_at(self.clock(), None) or View(board.board_id, "all")

    def live_keys(self) -> set[str]:
        """The views that have a rank index in this process."""
        return set(self._views)

    @property
    def default_index(self) -> RankIndex:
        """The rank index of the default board (tests and tools look at it)."""
        return self._live(self._default_view()).index

    @property
    def index_ready(self) -> bool:
        return all(live.keeper.ok for live in self._views.values())

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Publish change notices from a task, coalesced (see `service.notices`)."""
        self.notices.start()

    async def stop_upkeep(self) -> None:
        """Cancel the views' background upkeep steps (`maintain(wait=False)`)."""
        for live in list(self._views.values()):
            await live.keeper.close()

    async def close(self) -> None:
        await self.stop_upkeep()
        await self.notices.close()

    async def maintain(self, *, full: bool = False, wait: bool = True) -> None:
        """One step of index upkeep of every live view (`IndexKeeper.maintain`); views of
        periods that are no longer recent are dropped from the index. `wait=False` (the
        periodic upkeep): each view's rebuild runs on its own, not delaying the others'
        watch (see `IndexKeeper.maintain`)."""
        now = self.clock()
        recent = []
        for key, live in list(self._views.items()):
            if self._is_recent(live.view, now):
                recent.append(live.keeper.maintain(full=full, wait=wait))
                continue
            del self._views[key]
            await live.keeper.close()
            try:
                await self._indexes.drop(key)
            except Exception as exc:
                log.warning("could not drop the index of %s: %r", key, exc)
        # Concurrently: each view's rebuild waits its grace on a shared index (upkeep).
        await asyncio.gather(*recent)
        if self._pruned_at is None or time.monotonic() - self._pruned_at > PRUNE_SECONDS:
            self._pruned_at = time.monotonic()
            try:
                await self.prune()
            except Exception as exc:
                log.warning("pruning of past periods failed: %r", exc)
        if time.monotonic() - self._swept_at > SWEEP_SECONDS:
            self._swept_at = time.monotonic()
            try:
                await self._indexes.sweep(lambda key: self._is_recent(View.from_key(key), now))
            except Exception as exc:
                log.warning("sweep of old views failed: %r", exc)

    async def prune(self) -> int:
        """Delete the rows of every period that ended more than the retention ago (in small
        batches: `Store.prune_periods`); how many rows were deleted."""
        cutoff = self.clock() - self._retention_us
        deleted = 0
        for board in self.catalogue:
            if board.window != "all_time" and not board.is_total:
                deleted += await self._store.prune_periods(
                    board.board_id, board.period_id_at(cutoff)
                )
        if deleted:
            log.info("pruned %d rows of periods past the retention", deleted)
        return deleted

    async def rebuild(
        self, on_page: Callable[[int], None] | None = None, *, scope: str | None = None
    ) -> int | None:
        """Rebuild the live indexes of `scope` (every board when None) from the store, the
        views concurrently, and tell every process. Returns the number of entries indexed
        over those views, or None when one of them was being rebuilt by another process
        (that process finishes it; call again to be sure of every view)."""
        chosen = [
            live for live in self._views.values() if scope is None or live.view.board_id == scope
        ]
        # Concurrently: each view waits its grace (upkeep) and reads the store on its own.
        counts = await asyncio.gather(*(live.keeper.rebuild(on_page) for live in chosen))
        if any(count is None for count in counts):
            return None
        return sum(count for count in counts if count is not None)

    async def _new_index(self, view: View, here: bool) -> None:
        self.cache.invalidate(view.key)
        if here:  # the board may have changed: every process's clients get the new one
            await self.publish_change(view.key)

    # -- writes --------------------------------------------------------------------------------
    async def committed(self, events: Sequence[EventRecord]) -> list[list[int | None]]:
        """After a batch's commit: update every view the events counted on, in one index
        round trip, and tell every process once per view. Never raises. Returns, per event,
        its user's rank on each of `event.boards`: the index's, else SQL's for the whole
        batch (`service.batch_ranks`); None where neither could tell.

        A hidden event (its user quarantined) goes to no index: a tombstone keeps them off
        the views they were on when quarantined, not off a view of a later period."""
        if not events:
            return []
        now = self.clock()
        ranks: list[list[int | None]] = [[None] * len(e.boards) for e in events]
        updates: dict[str, list[tuple[Standing, int]]] = {}
        where: dict[str, list[tuple[int, int]]] = {}
        views: dict[str, View] = {}
        for i, event in enumerate(events):
            if event.hidden:
                continue  # rows only: the public boards do not show the user
            for j, on in enumerate(event.boards):
                key = on.view.key
                if key not in self._views and not self._is_recent(on.view, now):
                    continue  # an event dated in an old period: SQL has it
                views[key] = on.view
                updates.setdefault(key, []).append((on.standing, on.version))
                where.setdefault(key, []).append((i, j))
        for key in updates:
            self.cache.invalidate(key)
        taking = [
            (key, batch)
            for key, batch in updates.items()
            if self._live(views[key]).keeper.taking(batch)
        ]
        if taking:
            try:
                found = await self._indexes.apply_views(taking)
            except Exception as exc:
                for key, batch in taking:
                    self._views[key].keeper.failed(batch, exc)
            else:
                for (key, _), view_ranks in zip(taking, found, strict=True):
                    applied = self._views[key].keeper.applied(view_ranks)
                    for (i, j), rank in zip(where[key], applied, strict=True):
                        ranks[i][j] = rank
        # What the index could not tell: from SQL, once per view for the batch (batch_ranks).
        await fill_from_store(self._store, events, ranks, set(updates))
        for key in updates:
            self.cache.invalidate(key)
            await self.publish_change(key)
        return ranks

    async def removed(self, user_id: str) -> None:
        """After a deletion (or a ban, a quarantine) is committed: take the user off every
        recent view they counted on (from the log: also views this process never served, e.g.
        a region's) and every live one here. Never raises."""
        for key in await self._their_views(user_id):
            self.cache.invalidate(key)
            await self._live(View.from_key(key)).keeper.remove(user_id)
            self.cache.invalidate(key)
            await self.publish_change(key)

    async def restored(self, user_id: str) -> None:
        """After an unban or a release is committed: put the user back on every recent view
        they counted on, with their rows' standings and versions. Never raises."""
        for key in await self._their_views(user_id):
            view = View.from_key(key)
            total = self.catalogue.get(view.board_id).is_total
            try:
                row = await self._store.view_row(view, user_id, total)
            except Exception as exc:  # the divergence checks repair it
                log.warning("row of %s on %s unknown (%r)", user_id, key, exc)
                continue
            standing, version = (None, 0) if row is None else row
            self.cache.invalidate(key)
            await self._live(view).keeper.restore(user_id, standing, version)
            self.cache.invalidate(key)
            await self.publish_change(key)

    async def recomputed(
        self, user_id: str, boards: Sequence[BoardStanding], left: Sequence[View]
    ) -> None:
        """After a committed recompute of one user's rows (a void): their new standings
        (versioned) and the views they left. Never raises."""
        now = self.clock()
        for on in boards:
            if on.view.key in self._views or self._is_recent(on.view, now):
                self.cache.invalidate(on.view.key)
                await self._live(on.view).keeper.update_many([(on.standing, on.version)])
                self.cache.invalidate(on.view.key)
                await self.publish_change(on.view.key)
        for view in left:
            if view.key in self._views or self._is_recent(view, now):
                keeper = self._live(view).keeper
                self.cache.invalidate(view.key)
                await keeper.remove(user_id)
                await keeper.restore(user_id, None, 0)  # off this view, not tombstoned
                self.cache.invalidate(view.key)
                await self.publish_change(view.key)

    async def _their_views(self, user_id: str) -> list[str]:
        """The recent views the user's events counted on, and every live view here."""
        try:
            views = await self._store.views_counted(user_id)
        except Exception as exc:  # the rebuilds' divergence checks repair what stays
            log.warning("views of %s unknown (%r); live ones only", user_id, exc)
            views = []
        now = self.clock()
        keys = {live.key for live in self._views.values()}
        keys |= {v.key for v in views if self._is_recent(v, now)}
        return sorted(keys)

    async def renamed(self, user_id: str, display_name: str) -> None:
        """After a display name change is committed: show it on every live view."""
        for key, live in list(self._views.items()):
            self.cache.invalidate(key)
            await live.keeper.rename(user_id, display_name)
            self.cache.invalidate(key)
            await self.publish_change(key)

    async def publish_change(self, key: str) -> None:
        """Tell every process that the view `key` changed (`ChangeNotices`). Never raises."""
        await self.notices.publish(key)

    def changed_elsewhere(self, key: str) -> None:
        """A change notice from the broker (any process): the view's cached top is stale."""
        self.cache.invalidate(key)

    def resynced(self) -> None:
        """The broker reconnected: notices may have been lost, nothing cached is fresh."""
        self.cache.invalidate()
