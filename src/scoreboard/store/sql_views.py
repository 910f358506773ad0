"""`SqlStore`'s reads of ranked lists: the total board (`user_scores`) and every view of the
other boards (`board_scores`), with the same statements (`store/sql_standings.py`).

A view of a total board (`Board.is_total`, all time, one list) is read from `user_scores`;
any other view from its `board_scores` rows. Multi-statement reads (`*_page`, the walks)
read one consistent snapshot.

A mixin on purpose: these reads share `SqlStore`'s engines, guards and catalogue, and being
methods of the store keeps them on the `Store` protocol without a forwarding layer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scoreboard.domain.boards import ALL_TIME_ID, BoardCatalogue, View
from scoreboard.domain.ranking import Standing
from scoreboard.store import sql_standings
from scoreboard.store.engine import SNAPSHOT, Engines
from scoreboard.store.guard import Guard, unit_of_work
from scoreboard.store.schema import board_scores, score_events, user_scores, users
from scoreboard.store.sql_standings import TOTAL, Source


class RankedReads:
    """The reads; `SqlStore` sets the attributes below."""

    _engines: Engines
    _guard: Guard
    _walk_guard: Guard
    _boards: BoardCatalogue

    @property
    def guard(self) -> Guard:
        return self._guard

    @property
    def boards(self) -> BoardCatalogue:
        """The board catalogue the store writes and reads by."""
        return self._boards

    def _source(self, view: View) -> Source:
        """Where the view's rows are: `user_scores` for the total board's one list."""
        if view.board_id in self._boards:
            board = self._boards.get(view.board_id)
            if board.is_total and view.period_id == ALL_TIME_ID and view.region == "":
                return TOTAL
        return Source(view)

    def _read(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        return self._engines.read.begin()

    @contextlib.asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[AsyncConnection]:
        """A read transaction whose statements all see the same snapshot."""
        async with self._engines.read.connect() as conn:
            if self._engines.dialect == "postgresql":
                await conn.execution_options(
                    isolation_level="REPEATABLE READ", postgresql_readonly=True
                )
            else:  # a deferred BEGIN: WAL takes the snapshot at the first read
                await conn.execution_options(**{SNAPSHOT: True})
            async with conn.begin():
                yield conn

    # -- walks ---------------------------------------------------------------------------------
    def iter_standings(self, page_size: int = 1000) -> AsyncIterator[list[Standing]]:
        """Every active user's standing in rank order, in pages, from ONE snapshot."""
        return self._pages(TOTAL, page_size)

    def iter_view_standings(
        self, view: View, page_size: int = 1000
    ) -> AsyncIterator[list[Standing]]:
        """The same walk as `iter_standings`, over one view."""
        return self._pages(self._source(view), page_size)

    async def _pages(self, source: Source, page_size: int) -> AsyncIterator[list[Standing]]:
        """A task streams the list from one statement in one read transaction, a page ahead
        of the consumer; waiting for each page is bounded by the walk's stall bound (see
        `store/sql.py`), not the whole walk."""
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        pages: asyncio.Queue[list[Standing] | None] = asyncio.Queue(maxsize=1)
        walker = asyncio.create_task(self._walk(pages, page_size, source))
        try:
            guard = self._walk_guard
            while (page := await guard.run(sql_standings.next_page(pages, walker))) is not None:
                if page:  # an empty page only shows the walk advancing
                    yield page
        finally:
            self._walk_guard.abandon(walker)

    async def _walk(
        self, pages: asyncio.Queue[list[Standing] | None], page_size: int, source: Source
    ) -> None:
        async with self._snapshot() as conn:
            stall = self._walk_guard.seconds
            async for page in sql_standings.stream(conn, page_size, stall, source):
                await pages.put(page)
        await pages.put(None)

    # -- pages and ranks -----------------------------------------------------------------------
    @unit_of_work
    async def standings_page(self, limit: int, offset: int) -> tuple[list[Standing], int]:
        return await self._page(TOTAL, limit, offset)

    @unit_of_work
    async def view_page(self, view: View, limit: int, offset: int) -> tuple[list[Standing], int]:
        return await self._page(self._source(view), limit, offset)

    async def _page(self, source: Source, limit: int, offset: int) -> tuple[list[Standing], int]:
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        async with self._snapshot() as conn:
            return await sql_standings.page(conn, limit, offset, source)

    @unit_of_work
    async def standing_of(self, user_id: str) -> tuple[Standing, int] | None:
        async with self._read() as conn:
            return await sql_standings.standing_of(conn, user_id)

    @unit_of_work
    async def view_standing_of(
        self, view: View, user_id: str, *, hidden: bool = False
    ) -> tuple[Standing, int] | None:
        async with self._read() as conn:
            return await sql_standings.standing_of(conn, user_id, self._source(view), hidden=hidden)

    @unit_of_work
    async def view_ranks_of(self, view: View, user_ids: Sequence[str]) -> dict[str, int]:
        if not user_ids:
            return {}
        async with self._snapshot() as conn:
            return await sql_standings.ranks_of(conn, user_ids, self._source(view))

    @unit_of_work
    async def view_standings_of(self, view: View, user_ids: Sequence[str]) -> list[Standing]:
        if not user_ids:
            return []
        async with self._snapshot() as conn:
            return await sql_standings.standings_of(conn, user_ids, self._source(view))

    @unit_of_work
    async def views_counted(self, user_id: str) -> list[View]:
        e = score_events
        stmt = sa.select(e.c.action_type, e.c.region, e.c.at_us, e.c.reached_at_us).where(
            e.c.user_id == user_id
        )
        async with self._read() as conn:
            rows = (await conn.execute(stmt)).all()
        found: dict[str, View] = {}
        for action_type, region, at_us, reached in rows:
            at = int(at_us if at_us is not None else reached)
            for view in self._boards.counted(action_type, region, at):
                found.setdefault(view.key, view)
        return list(found.values())

    @unit_of_work
    async def views_of_user(self, user_id: str) -> list[View]:
        async with self._snapshot() as conn:
            active = sa.select(users.c.user_id).where(
                users.c.user_id == user_id, users.c.deleted_at.is_(None)
            )
            if (await conn.execute(active)).first() is None:
                return []
            scored = sa.select(user_scores.c.user_id).where(user_scores.c.user_id == user_id)
            has_score = (await conn.execute(scored)).first() is not None
            t = board_scores
            mine = sa.select(t.c.board_id, t.c.period_id, t.c.region).where(t.c.user_id == user_id)
            rows = [View(r.board_id, r.period_id, r.region) for r in await conn.execute(mine)]
        order = {board.board_id: i for i, board in enumerate(self._boards)}
        totals = [b for b in self._boards if b.is_total]
        views = [View(b.board_id, ALL_TIME_ID) for b in totals] if has_score else []
        listed = [
            v for v in rows if v.board_id in order and not self._boards.get(v.board_id).is_total
        ]
        return views + sorted(listed, key=lambda v: (order[v.board_id], v.period_id, v.region))
