"""`record_events`: a batch of score commands applied in one transaction (group commit).

Locking: the batch first locks its users' rows, in user id order (`FOR NO KEY UPDATE` on
PostgreSQL; SQLite's `BEGIN IMMEDIATE` already holds the database's write lock). That one lock
serializes every batch that touches a user, whatever process it comes from, so two batches can
never deadlock on score rows taken in different orders, a user cannot be deleted under a batch,
and the current scores read with the lock stay true for the whole transaction. `FOR NO KEY
UPDATE` rather than `FOR SHARE`: shared locks would let two batches interleave their score
upserts and deadlock. The idempotency key's primary key stays the final arbiter
(`INSERT .. ON CONFLICT DO NOTHING` waits for a concurrent claimer and then sees its row).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scoreboard.domain.ranking import SCORE_MAX, SCORE_MIN
from scoreboard.store.base import EventRecord, Outcome, ScoreCommand, ScoreOutcome
from scoreboard.store.engine import insert
from scoreboard.store.records import event_from_row
from scoreboard.store.schema import actions, idempotency_keys, score_events, user_scores, users

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CONFLICT = ScoreOutcome(Outcome.CONFLICT)
USER_GONE = ScoreOutcome(Outcome.USER_GONE)


def from_us(at_us: int) -> datetime:
    return EPOCH + timedelta(microseconds=at_us)


def to_us(at: datetime) -> int:
    return (at - EPOCH) // timedelta(microseconds=1)


@dataclass(slots=True)
class _Held:
    """An active user of the batch, locked, with their current score."""

    display_name: str
    score: int


@dataclass(slots=True)
class _Batch:
    conn: AsyncConnection
    dialect: str
    now: datetime
    held: dict[str, _Held]


async def record_batch(
    conn: AsyncConnection, commands: Sequence[ScoreCommand], now: datetime
) -> list[ScoreOutcome]:
    """Apply `commands` in order inside the caller's (write) transaction."""
    dialect = conn.dialect.name
    held = await _lock_users(conn, dialect, {command.user_id for command in commands})
    batch = _Batch(conn, dialect, now, held)
    return [await _apply(batch, command) for command in commands]


async def _lock_users(conn: AsyncConnection, dialect: str, user_ids: set[str]) -> dict[str, _Held]:
    stmt = (
        sa.select(users.c.user_id, users.c.display_name, user_scores.c.score)
        .select_from(users.outerjoin(user_scores, user_scores.c.user_id == users.c.user_id))
        .where(users.c.user_id.in_(sorted(user_ids)), users.c.deleted_at.is_(None))
        .order_by(users.c.user_id)
    )
    if dialect == "postgresql":
        stmt = stmt.with_for_update(key_share=True, of=users)  # FOR NO KEY UPDATE OF users
    rows = (await conn.execute(stmt)).all()
    return {row.user_id: _Held(row.display_name, int(row.score or 0)) for row in rows}


async def _apply(batch: _Batch, command: ScoreCommand) -> ScoreOutcome:
    held = batch.held.get(command.user_id)
    if held is None:
        return USER_GONE
    keyed = command.idempotency_key is not None
    if keyed and not await _claim_key(batch, command):
        return await _replay(batch, command)
    new_score = held.score + command.points
    in_range = SCORE_MIN <= new_score <= SCORE_MAX
    if not in_range or (command.action_id is not None and not await _complete(batch, command)):
        if keyed:
            await _release_key(batch, command)
        return CONFLICT
    event = await _write_event(batch, command, held)
    held.score = event.new_score
    if keyed:
        await batch.conn.execute(
            sa.update(idempotency_keys).where(_key_of(command)).values(event_id=event.event_id)
        )
    return ScoreOutcome(Outcome.RECORDED, event)


def _key_of(command: ScoreCommand) -> sa.ColumnElement[bool]:
    return sa.and_(
        idempotency_keys.c.user_id == command.user_id,
        idempotency_keys.c.key == command.idempotency_key,
    )


async def _claim_key(batch: _Batch, command: ScoreCommand) -> bool:
    """True if this command now owns its key; False if the key was already used."""
    stmt = (
        insert(batch.dialect, idempotency_keys)
        .values(
            user_id=command.user_id,
            key=command.idempotency_key,
            request_hash=command.request_hash,
            event_id=None,
            created_at=batch.now,
        )
        .on_conflict_do_nothing(index_elements=["user_id", "key"])
        .returning(idempotency_keys.c.key)
    )
    return (await batch.conn.execute(stmt)).first() is not None


async def _release_key(batch: _Batch, command: ScoreCommand) -> None:
    await batch.conn.execute(sa.delete(idempotency_keys).where(_key_of(command)))


async def _replay(batch: _Batch, command: ScoreCommand) -> ScoreOutcome:
    claimed = (
        await batch.conn.execute(
            sa.select(idempotency_keys.c.request_hash, idempotency_keys.c.event_id).where(
                _key_of(command)
            )
        )
    ).first()
    if claimed is None or claimed.event_id is None or claimed.request_hash != command.request_hash:
        return CONFLICT
    row = (
        await batch.conn.execute(
            sa.select(score_events, users.c.display_name)
            .join(users, users.c.user_id == score_events.c.user_id)
            .where(score_events.c.id == claimed.event_id)
        )
    ).one()
    return ScoreOutcome(Outcome.REPLAYED, event_from_row(row))


async def _complete(batch: _Batch, command: ScoreCommand) -> bool:
    """Complete the command's action if it is the user's and still open."""
    result = await batch.conn.execute(
        sa.update(actions)
        .where(
            actions.c.action_id == command.action_id,
            actions.c.user_id == command.user_id,
            actions.c.status == "started",
        )
        .values(status="completed", ended_at=_at(batch, command), points=command.points)
        .returning(actions.c.action_id)
    )
    return result.first() is not None


def _at(batch: _Batch, command: ScoreCommand) -> datetime:
    return from_us(command.at_us) if command.at_us > 0 else batch.now


async def _write_event(batch: _Batch, command: ScoreCommand, held: _Held) -> EventRecord:
    at_us = command.at_us if command.at_us > 0 else to_us(batch.now)
    upsert = insert(batch.dialect, user_scores).values(
        user_id=command.user_id,
        score=command.points,
        reached_at_us=at_us,
        version=1,
        updated_at=batch.now,
    )
    # Zero points reach no new score, so the time the score was reached stays.
    reached = upsert.excluded.reached_at_us if command.points else user_scores.c.reached_at_us
    returning = upsert.on_conflict_do_update(
        index_elements=["user_id"],
        set_={
            "score": user_scores.c.score + upsert.excluded.score,
            "reached_at_us": reached,
            "version": user_scores.c.version + 1,
            "updated_at": upsert.excluded.updated_at,
        },
    ).returning(user_scores.c.score, user_scores.c.reached_at_us, user_scores.c.version)
    standing = (await batch.conn.execute(returning)).one()
    values = {
        "user_id": command.user_id,
        "action_type": command.action_type,
        "points": command.points,
        "new_score": int(standing.score),
        "reached_at_us": int(standing.reached_at_us),
        "version": int(standing.version),
        "idempotency_key": command.idempotency_key,
        "request_hash": command.request_hash,
        "action_id": command.action_id,
        "created_at": batch.now,
    }
    stmt = sa.insert(score_events).values(values).returning(score_events.c.id)
    event_id = int((await batch.conn.execute(stmt)).scalar_one())
    return EventRecord(
        event_id=event_id,
        user_id=command.user_id,
        display_name=held.display_name,
        action_type=command.action_type,
        points=command.points,
        new_score=int(standing.score),
        reached_at_us=int(standing.reached_at_us),
        version=int(standing.version),
        created_at=batch.now,
    )
