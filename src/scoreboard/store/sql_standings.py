"""Board reads in the ranking order of `domain.ranking`, computed by SQL.

Order: score DESC, reached_at_us ASC, user_id ASC (byte order: BINARY collation on SQLite,
"C" on PostgreSQL). Only active users are on the board (deleting a user also drops their score
row; the join on `users` keeps reads right even so).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scoreboard.domain.ranking import Standing
from scoreboard.store.records import standing_from_row
from scoreboard.store.schema import user_scores, users


def _board() -> sa.Select[tuple[str, str, int, int]]:
    return (
        sa.select(
            user_scores.c.user_id,
            users.c.display_name,
            user_scores.c.score,
            user_scores.c.reached_at_us,
        )
        .select_from(user_scores.join(users, users.c.user_id == user_scores.c.user_id))
        .where(users.c.deleted_at.is_(None))
    )


def _rank_order() -> tuple[sa.ColumnElement[object], ...]:
    return (
        user_scores.c.score.desc(),
        user_scores.c.reached_at_us.asc(),
        user_scores.c.user_id.asc(),
    )


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


def behind(standing: Standing) -> sa.ColumnElement[bool]:
    """Rows that rank strictly after `standing` (the keyset pagination condition)."""
    return sa.not_(
        sa.or_(
            ahead_of(user_scores, standing.score, standing.reached_at_us, standing.user_id),
            user_scores.c.user_id == standing.user_id,
        )
    )


async def page_after(conn: AsyncConnection, after: Standing | None, size: int) -> list[Standing]:
    stmt = _board().order_by(*_rank_order()).limit(size)
    if after is not None:
        stmt = stmt.where(behind(after))
    return [standing_from_row(row) for row in (await conn.execute(stmt)).all()]


async def page(conn: AsyncConnection, limit: int, offset: int) -> tuple[list[Standing], int]:
    total = (
        await conn.execute(sa.select(sa.func.count()).select_from(_board().subquery()))
    ).scalar_one()
    stmt = _board().order_by(*_rank_order()).limit(limit).offset(offset)
    rows = (await conn.execute(stmt)).all()
    return [standing_from_row(row) for row in rows], int(total)


async def standing_of(conn: AsyncConnection, user_id: str) -> tuple[Standing, int] | None:
    """The user's standing and rank, in ONE statement so both come from the same snapshot."""
    others = user_scores.alias("others")
    people = users.alias("people")
    # Correlated: counts the active rows ranked ahead of the outer row.
    ahead = (
        sa.select(sa.func.count())
        .select_from(others.join(people, people.c.user_id == others.c.user_id))
        .where(
            people.c.deleted_at.is_(None),
            ahead_of(
                others, user_scores.c.score, user_scores.c.reached_at_us, user_scores.c.user_id
            ),
        )
        .correlate(user_scores)
        .scalar_subquery()
    )
    stmt = _board().add_columns(ahead.label("ahead")).where(user_scores.c.user_id == user_id)
    row = (await conn.execute(stmt)).first()
    if row is None:
        return None
    return standing_from_row(row), int(row.ahead) + 1
