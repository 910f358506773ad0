"""Board reads in the ranking order of `domain.ranking`, computed by SQL.

Order: score DESC, reached_at_us ASC, user_id ASC (byte order: BINARY collation on SQLite,
"C" on PostgreSQL). Only active users are on the board (deleting a user also drops their score
row; the join on `users` keeps reads right even so).

Every read takes a `Source`: the total board (`user_scores`, the default) or one view of
another board (its rows of `board_scores`); both tables have the same ranking columns and a
rank index, so the same statements serve both.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from itertools import starmap
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.compiler import SQLCompiler

from scoreboard.domain.boards import View
from scoreboard.domain.ranking import Standing
from scoreboard.store.records import standing_from_row
from scoreboard.store.schema import board_scores, user_scores, users
from scoreboard.store.sql_batch import chunks


@dataclass(frozen=True, slots=True)
class Source:
    """Where a ranked list's rows are: `user_scores` (view None) or a view's `board_scores`."""

    view: View | None = None

    @property
    def table(self) -> sa.Table:
        return user_scores if self.view is None else board_scores

    def where(self, rows: sa.FromClause) -> list[sa.ColumnElement[bool]]:
        """The conditions picking the list's rows out of `rows` (the table or an alias)."""
        if self.view is None:
            return []
        return [
            rows.c.board_id == self.view.board_id,
            rows.c.period_id == self.view.period_id,
            rows.c.region == self.view.region,
        ]


TOTAL = Source()


def visible(people: sa.FromClause = users) -> sa.ColumnElement[bool]:
    """Who is on the public boards: users not deleted and not banned or quarantined."""
    return sa.and_(people.c.deleted_at.is_(None), people.c.status == "active")


def _board(source: Source = TOTAL, also: str | None = None) -> sa.Select[str, str, int, int]:
    """The list's visible rows; `also`: that user's row too if they are quarantined (hidden
    from everyone else: API.md section 6)."""
    t = source.table
    shown = visible()
    if also is not None:
        mine = sa.and_(
            users.c.user_id == also,
            users.c.deleted_at.is_(None),
            users.c.status == "quarantined",
        )
        shown = sa.or_(shown, mine)
    return (
        sa.select(t.c.user_id, users.c.display_name, t.c.score, t.c.reached_at_us)
        .select_from(t.join(users, users.c.user_id == t.c.user_id))
        .where(shown, *source.where(t))
    )


def _rank_order(source: Source = TOTAL) -> tuple[sa.ColumnElement[object], ...]:
    t = source.table
    return (t.c.score.desc(), t.c.reached_at_us.asc(), t.c.user_id.asc())


def ahead_of(
    scores: sa.FromClause,
    score: sa.ColumnElement[int] | int,
    reached_at_us: sa.ColumnElement[int] | int,
    user_id: sa.ColumnElement[str] | str,
) -> sa.ColumnElement[bool]:
    """Rows of `scores` that rank strictly ahead of the given standing."""
    return sa.or_(
        scores.c.score > score,
        sa.and_(
            scores.c.score == score,
            sa.or_(
                scores.c.reached_at_us < reached_at_us,
                sa.and_(scores.c.reached_at_us == reached_at_us, scores.c.user_id < user_id),
            ),
        ),
    )


async def stream(
    conn: AsyncConnection, page_size: int, stall: float, source: Source = TOTAL
) -> AsyncIterator[list[Standing]]:
    """The whole board in rank order, pages of at most `page_size`, in ONE pass per table.

    Paging with one query per page does not scale: SQLite cannot seek into an index of mixed
    DESC/ASC columns with a keyset condition, so every page scanned the index from the top
    (quadratic: minutes for 1M users), and OFFSET paging is quadratic everywhere. Instead one
    streamed statement (a server-side cursor on PostgreSQL, the driver's cursor on SQLite)
    walks the rank index once. Run it inside one snapshot (SQLite reads two statements).

    The rows come from the driver's cursor, not through SQLAlchemy's result rows: a bulk read
    of a million rows spent as much CPU in the row objects as in everything else. `stall`
    bounds each of the driver's fetches on PostgreSQL (its `command_timeout` is the request
    bound, which the first fetch of a big board's sort exceeds); SQLite reads a local file.
    """
    if conn.dialect.name == "sqlite":
        walk = _joined_here(conn, page_size, source)
    else:
        walk = _joined_in_sql(conn, page_size, stall, source)
    async for page in walk:
        yield page


def _sql(conn: AsyncConnection, stmt: sa.ClauseElement) -> tuple[str, tuple[Any, ...]]:
    """The statement as the driver's SQL and its positional parameters (a view's walk has
    its board, period and region; plain strings, which need no bind processing)."""
    compiled = cast(SQLCompiler, stmt.compile(dialect=conn.dialect))
    names = compiled.positiontup or []
    return str(compiled), tuple(compiled.params[name] for name in names)


async def _joined_in_sql(
    conn: AsyncConnection, size: int, stall: float, source: Source
) -> AsyncIterator[list[Standing]]:
    # The whole board's cost estimate passes PostgreSQL's JIT thresholds: compiling (with
    # inlining) delayed the first page by seconds on a loaded machine, for a plain sort that
    # JIT does not speed up. The planner's choice, a hash join and a sort, costs a fifth of the
    # index-ordered nested loop for the whole board (measured at 1M users); its first page
    # waits for the sort, hence `stall` rather than the request bound.
    await conn.execute(sa.text("SET LOCAL jit = off"))
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    sql, args = _sql(conn, _board(source).order_by(*_rank_order(source)))
    cursor = await driver.cursor(sql, *args, timeout=stall)
    while records := await cursor.fetch(size, timeout=stall):
        yield list(starmap(Standing, records))


async def _joined_here(
    conn: AsyncConnection, size: int, source: Source
) -> AsyncIterator[list[Standing]]:
    """SQLite's nested loop would look every user up at random (two B-tree descents each:
    ~2.5x the CPU of all the rest of a rebuild); one sequential pass over `users` into a dict
    costs a fraction. An empty page follows each page of names: progress, for the caller's
    time bound on every page. One thread hop of aiosqlite per page (`fetchmany`)."""
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    names: dict[str, str] = {}
    active = sa.select(users.c.user_id, users.c.display_name).where(visible())
    cursor = await driver.execute(*_sql(conn, active))
    while listed := await cursor.fetchmany(size):
        names.update(listed)
        yield []
    await cursor.close()
    t = source.table
    scores = sa.select(t.c.user_id, t.c.score, t.c.reached_at_us).where(*source.where(t))
    cursor = await driver.execute(*_sql(conn, scores.order_by(*_rank_order(source))))
    while rows := await cursor.fetchmany(size):
        yield [
            Standing(user_id, name, score, reached)
            for user_id, score, reached in rows
            if (name := names.get(user_id)) is not None
        ]
    await cursor.close()


async def page(
    conn: AsyncConnection, limit: int, offset: int, source: Source = TOTAL
) -> tuple[list[Standing], int]:
    total = (
        await conn.execute(sa.select(sa.func.count()).select_from(_board(source).subquery()))
    ).scalar_one()
    stmt = _board(source).order_by(*_rank_order(source)).limit(limit).offset(offset)
    rows = (await conn.execute(stmt)).all()
    return [standing_from_row(row) for row in rows], int(total)


async def standings_of(
    conn: AsyncConnection, user_ids: Sequence[str], source: Source = TOTAL
) -> list[Standing]:
    """The standings of the active users among `user_ids` on the list, in rank order."""
    t = source.table
    found: list[Standing] = []
    for chunk in chunks(sorted(set(user_ids))):
        stmt = _board(source).where(t.c.user_id.in_(chunk))
        found.extend(standing_from_row(row) for row in await conn.execute(stmt))
    return sorted(found, key=Standing.sort_key)


def _ahead(source: Source) -> sa.ScalarSelect[int]:
    """Correlated: the count of the visible rows ranked ahead of the outer row of the list."""
    t = source.table
    others = t.alias("others")
    people = users.alias("people")
    return (
        sa.select(sa.func.count())
        .select_from(others.join(people, people.c.user_id == others.c.user_id))
        .where(
            visible(people),
            *source.where(others),
            ahead_of(others, t.c.score, t.c.reached_at_us, t.c.user_id),
        )
        .correlate(t)
        .scalar_subquery()
    )


async def ranks_of(
    conn: AsyncConnection, user_ids: Sequence[str], source: Source = TOTAL
) -> dict[str, int]:
    """The 1-based rank of each visible user among `user_ids` on the list (others left out),
    one statement per chunk of ids."""
    t = source.table
    found: dict[str, int] = {}
    for chunk in chunks(sorted(set(user_ids))):
        stmt = _board(source).add_columns(_ahead(source).label("ahead"))
        for row in await conn.execute(stmt.where(t.c.user_id.in_(chunk))):
            found[row.user_id] = int(row.ahead) + 1
    return found


async def standing_of(
    conn: AsyncConnection, user_id: str, source: Source = TOTAL, *, hidden: bool = False
) -> tuple[Standing, int] | None:
    """The user's standing and rank, in ONE statement so both come from the same snapshot.
    `hidden`: also for a quarantined user, ranked among the visible ones as if they were on
    the board (what they see of themselves; they are not told)."""
    t = source.table
    board = _board(source, also=user_id if hidden else None)
    stmt = board.add_columns(_ahead(source).label("ahead")).where(t.c.user_id == user_id)
    row = (await conn.execute(stmt)).first()
    if row is None:
        return None
    return standing_from_row(row), int(row.ahead) + 1


async def next_page(
    pages: asyncio.Queue[list[Standing] | None], walker: asyncio.Task[None]
) -> list[Standing] | None:
    """The walker's next page; None at the end; the walker's error if it failed."""
    getter = asyncio.ensure_future(pages.get())
    try:
        await asyncio.wait({getter, walker}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        getter.cancel()
    if getter.done() and not getter.cancelled():
        return getter.result()
    if not pages.empty():
        return pages.get_nowait()
    walker.result()  # raises what ended the walk
    return None
