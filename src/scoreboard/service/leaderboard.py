"""Leaderboard reads and index maintenance.

The store is the truth; the rank index is derived. Writes update the index only after commit
and then publish "scope changed" to every process. Any failure of the index or broker after a
commit is logged and repaired (by a rebuild), never reported to the client whose event is
already durable. Reads use the index and fall back to SQL when the index is unavailable or
being rebuilt, so ranks served are never wrong, only slower.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from scoreboard.domain.errors import InvalidScope, ValidationFailed
from scoreboard.domain.ranking import RankedEntry, Standing
from scoreboard.realtime.base import Broker, RankIndex
from scoreboard.store.base import EventRecord, Store

log = logging.getLogger(__name__)

SCOPES = frozenset({"global"})
MAX_LIMIT = 100
MAX_AROUND = 50


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
    def __init__(self, store: Store, index: RankIndex, broker: Broker) -> None:
        self._store = store
        self._index = index
        self._broker = broker
        self._index_ok = False  # False until a rebuild succeeds; reads then go to SQL
        self._rebuild_lock = asyncio.Lock()

    @property
    def index_ready(self) -> bool:
        return self._index_ok

    async def rebuild(self) -> int:
        """Rebuild the index from the store; reads use SQL until it is complete."""
        async with self._rebuild_lock:
            self._index_ok = False
            count = await self._index.replace_all(self._store.iter_standings(page_size=1000))
            self._index_ok = True
        await self.publish_change("global")
        return count

    async def reconcile(self, *, full: bool = False) -> int | None:
        """Rebuild when the index is unusable, or (full) when it diverged from the store."""
        if full and self._index_ok and await self._agrees_with_store():
            return None
        return await self.rebuild()

    async def _agrees_with_store(self) -> bool:
        """Cheap divergence check: same count and same top 100 as SQL."""
        try:
            indexed = await self._index.top(MAX_LIMIT)
            count = await self._index.count()
        except Exception:
            return False
        standings, total = await self._store.standings_page(MAX_LIMIT, 0)
        return count == total and indexed == _ranked(standings, 0)

    async def committed(self, event: EventRecord) -> None:
        """After commit: update the index and tell every process. Never raises."""
        try:
            await self._index.apply(event.standing(), event.version)
        except Exception:
            log.exception("rank index update failed; index marked for rebuild")
            self._index_ok = False
        await self.publish_change("global")

    async def removed(self, user_id: str) -> None:
        try:
            await self._index.remove(user_id)
        except Exception:
            log.exception("rank index removal failed; index marked for rebuild")
            self._index_ok = False
        await self.publish_change("global")

    async def publish_change(self, scope: str) -> None:
        try:
            await self._broker.publish(orjson.dumps({"type": "changed", "scope": scope}))
        except Exception:
            log.exception("publish failed; clients resync on the next change")

    # -- reads ---------------------------------------------------------------------------------
    async def top(self, scope: str, limit: int, offset: int = 0) -> list[RankedEntry]:
        check_scope(scope)
        if self._index_ok:
            try:
                return await self._index.top(limit, offset)
            except Exception:
                log.exception("rank index read failed; falling back to SQL")
                self._index_ok = False
        standings, _ = await self._store.standings_page(limit, offset)
        return _ranked(standings, offset)

    async def rank_of(self, user_id: str) -> int | None:
        """The user's current rank (index, or SQL when the index is unavailable)."""
        if self._index_ok:
            try:
                entry = await self._index.entry_of(user_id)
                return None if entry is None else entry.rank
            except Exception:
                log.exception("rank index read failed; falling back to SQL")
                self._index_ok = False
        found = await self._store.standing_of(user_id)
        return None if found is None else found[1]

    async def page(self, scope: str, limit: int, offset: int) -> Page:
        check_scope(scope)
        check_range("limit", limit, 1, MAX_LIMIT)
        check_range("offset", offset, 0)
        now = datetime.now(UTC)
        if self._index_ok:
            try:
                items = await self._index.top(limit, offset)
                total = await self._index.count()
                return Page(scope, limit, offset, total, items, now)
            except Exception:
                log.exception("rank index read failed; falling back to SQL")
                self._index_ok = False
        standings, total = await self._store.standings_page(limit, offset)
        return Page(scope, limit, offset, total, _ranked(standings, offset), now)

    async def mine(self, scope: str, user_id: str, display_name: str, around: int) -> MyStanding:
        check_scope(scope)
        check_range("around", around, 0, MAX_AROUND)
        if self._index_ok:
            try:
                return await self._mine_from_index(user_id, display_name, around)
            except Exception:
                log.exception("rank index read failed; falling back to SQL")
                self._index_ok = False
        return await self._mine_from_sql(user_id, display_name, around)

    async def _mine_from_index(self, user_id: str, name: str, around: int) -> MyStanding:
        entry = await self._index.entry_of(user_id)
        if entry is None:
            return MyStanding(user_id, name, 0, None, [])
        neighbours = await self._index.around(user_id, around)
        return MyStanding(user_id, entry.display_name, entry.score, entry.rank, neighbours)

    async def _mine_from_sql(self, user_id: str, name: str, around: int) -> MyStanding:
        found = await self._store.standing_of(user_id)
        if found is None:
            return MyStanding(user_id, name, 0, None, [])
        standing, rank = found
        start = max(1, rank - around)
        page, _ = await self._store.standings_page(rank + around - start + 1, start - 1)
        neighbours = _ranked(page, start - 1)
        return MyStanding(user_id, standing.display_name, standing.score, rank, neighbours)


def _ranked(standings: list[Standing], offset: int) -> list[RankedEntry]:
    return [
        RankedEntry(offset + i + 1, s.user_id, s.display_name, s.score)
        for i, s in enumerate(standings)
    ]
