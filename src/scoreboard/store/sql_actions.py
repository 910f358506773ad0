"""Actions of the lifecycle compatibility routes: started → completed | cancelled.

Completion happens in `record_events` (a `ScoreCommand` with `action_id`), in the same
transaction as the points it awards; this module starts, reads, cancels and flags actions.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scoreboard.domain.errors import NotFound
from scoreboard.store.base import ActionRecord
from scoreboard.store.records import action_from_row
from scoreboard.store.schema import actions, users


def new_action_id() -> str:
    return str(uuid.uuid4())


async def start_action(
    conn: AsyncConnection,
    user_id: str,
    action_type: str,
    metadata: dict[str, Any],
    at: datetime,
    *,
    supersede: bool = False,
) -> ActionRecord:
    user = sa.select(users.c.user_id).where(
        users.c.user_id == user_id, users.c.deleted_at.is_(None)
    )
    if conn.dialect.name == "postgresql":
        # A concurrent delete_user waits for us; superseding starts of one user also wait for
        # each other (exclusive), or two could each see no open action and both stay open.
        # SQLite's BEGIN IMMEDIATE serializes every write already.
        user = user.with_for_update(read=not supersede)
    if (await conn.execute(user)).first() is None:
        raise NotFound("Unknown user.")
    if supersede:
        await conn.execute(
            sa.update(actions)
            .where(
                actions.c.user_id == user_id,
                actions.c.action_type == action_type,
                actions.c.status == "started",
            )
            .values(status="cancelled", ended_at=at)
        )
    stmt = (
        sa.insert(actions)
        .values(
            action_id=new_action_id(),
            user_id=user_id,
            action_type=action_type,
            status="started",
            started_at=at,
            metadata=dict(metadata),
            suspicious=False,
        )
        .returning(*actions.c)
    )
    return action_from_row((await conn.execute(stmt)).one())


async def get_action(conn: AsyncConnection, action_id: str) -> ActionRecord | None:
    row = (await conn.execute(sa.select(actions).where(actions.c.action_id == action_id))).first()
    return None if row is None else action_from_row(row)


async def cancel_action(conn: AsyncConnection, action_id: str, at: datetime) -> ActionRecord | None:
    stmt = (
        sa.update(actions)
        .where(actions.c.action_id == action_id, actions.c.status == "started")
        .values(status="cancelled", ended_at=at)
        .returning(*actions.c)
    )
    row = (await conn.execute(stmt)).first()
    return None if row is None else action_from_row(row)


async def mark_suspicious(conn: AsyncConnection, action_id: str) -> bool:
    stmt = (
        sa.update(actions)
        .where(actions.c.action_id == action_id)
        .values(suspicious=True)
        .returning(actions.c.action_id)
    )
    return (await conn.execute(stmt)).first() is not None
