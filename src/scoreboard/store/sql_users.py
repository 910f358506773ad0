"""Users: creation with generated ids, lookups, profile changes, deletion."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scoreboard.domain.errors import UsernameTaken
from scoreboard.store.base import UserRecord
from scoreboard.store.engine import insert
from scoreboard.store.records import user_from_row
from scoreboard.store.schema import board_scores, user_scores, users

ID_ATTEMPTS = 5


def new_user_id() -> str:
    """16 lowercase hex characters (64 random bits)."""
    return secrets.token_hex(8)


async def create_user(conn: AsyncConnection, values: dict[str, Any], now: datetime) -> UserRecord:
    """Insert a user; `UsernameTaken` when the username (or external subject) is in use.

    `ON CONFLICT DO NOTHING` rather than catching an IntegrityError: the transaction stays
    usable on PostgreSQL, and a concurrent insert of the same username is waited for.
    """
    for _ in range(ID_ATTEMPTS):
        stmt = (
            insert(conn.dialect.name, users)
            .values(user_id=new_user_id(), created_at=now, deleted_at=None, **values)
            .on_conflict_do_nothing()
            .returning(*users.c)
        )
        row = (await conn.execute(stmt)).first()
        if row is not None:
            return user_from_row(row)
        await _raise_taken(conn, values)
    raise RuntimeError("could not generate a free user id")  # 64 random bits: never happens


async def _raise_taken(conn: AsyncConnection, values: dict[str, Any]) -> None:
    """Explain a conflicting insert; returns only if the conflict was the generated id."""
    taken = await conn.scalar(
        sa.select(users.c.user_id).where(users.c.username == values["username"])
    )
    if taken is not None:
        raise UsernameTaken(details={"field": "username"})
    subject = values.get("external_subject")
    if subject is not None:
        holder = await conn.scalar(
            sa.select(users.c.user_id).where(users.c.external_subject == subject)
        )
        if holder is not None:
            raise UsernameTaken(
                "That external identity already has an account.",
                details={"field": "external_subject"},
            )


async def find_user(conn: AsyncConnection, condition: sa.ColumnElement[bool]) -> UserRecord | None:
    row = (await conn.execute(sa.select(users).where(condition))).first()
    return None if row is None else user_from_row(row)


async def find_users(
    conn: AsyncConnection, condition: sa.ColumnElement[bool]
) -> dict[str, UserRecord]:
    rows = (await conn.execute(sa.select(users).where(condition))).all()
    return {record.user_id: record for record in map(user_from_row, rows)}


async def update_profile(
    conn: AsyncConnection, user_id: str, changes: dict[str, Any]
) -> UserRecord | None:
    active = sa.and_(users.c.user_id == user_id, users.c.deleted_at.is_(None))
    if not changes:
        return await find_user(conn, active)
    stmt = sa.update(users).where(active).values(**changes).returning(*users.c)
    row = (await conn.execute(stmt)).first()
    return None if row is None else user_from_row(row)


async def delete_user(conn: AsyncConnection, user_id: str, now: datetime) -> bool:
    """Mark deleted and drop the score and board rows (the boards forget them); events stay."""
    result = await conn.execute(
        sa.update(users)
        .where(users.c.user_id == user_id, users.c.deleted_at.is_(None))
        .values(deleted_at=now)
        .returning(users.c.user_id)
    )
    if result.first() is None:
        return False
    await conn.execute(sa.delete(user_scores).where(user_scores.c.user_id == user_id))
    await conn.execute(sa.delete(board_scores).where(board_scores.c.user_id == user_id))
    return True
