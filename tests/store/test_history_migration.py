"""Migration 0009 on a populated 0007 database (both databases): every event is kept with its
id and values, the id sequence goes on from where it was, idempotency keys replay as before,
voids stay unique, the log stays append-only; on PostgreSQL each event is in its month's
partition. And back: downgrade to 0007 keeps them all as well.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from scoreboard.domain.errors import AlreadyVoided
from scoreboard.store.base import Outcome, ScoreCommand
from scoreboard.store.migrate import alembic_config, current_revision, run_migrations
from scoreboard.store.sql import SqlStore
from scoreboard.store.sql_partitions import partition_name

OLD = [  # (created_at, points, idempotency key): months apart, one of them without a key
    (datetime(2025, 3, 5, 10, tzinfo=UTC), 10, "k-march"),
    (datetime(2025, 3, 31, 23, 59, 59, 999999, tzinfo=UTC), 20, "k-end-of-march"),
    (datetime(2025, 4, 1, tzinfo=UTC), 30, None),
    (datetime(2026, 1, 20, tzinfo=UTC), 40, "k-january"),
]
REFUSALS = ("UPDATE {t} SET points = 1", "DELETE FROM {t}")


@asynccontextmanager
async def raw(url: str) -> AsyncIterator[AsyncConnection]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            yield conn
    finally:
        await engine.dispose()


async def populate_0007(url: str) -> None:
    """A user, events in several months with their keys, and a void, as 0007's code wrote
    them (rows; the keys point at their events)."""
    await asyncio.to_thread(command.upgrade, alembic_config(url), "0007")
    async with raw(url) as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO users (user_id, username, display_name, created_at)"
                " VALUES ('u1', 'alice', 'Alice', :at)"
            ),
            {"at": OLD[0][0]},
        )
        score = 0
        for version, (at, points, key) in enumerate(OLD, start=1):
            score += points
            event_id = await insert(conn, at, points, score, version, key)
            if key is not None:
                await conn.execute(
                    sa.text(
                        "INSERT INTO idempotency_keys (user_id, key, request_hash, event_id,"
                        " created_at) VALUES ('u1', :key, 'h', :event, :at)"
                    ),
                    {"key": key, "event": event_id, "at": at},
                )
        # The third event voided, by a compensation in January 2026.
        await insert(conn, datetime(2026, 1, 21, tzinfo=UTC), -30, score - 30, 5, None, voids=3)
        await conn.execute(
            sa.text(
                "INSERT INTO user_scores (user_id, score, reached_at_us, version, updated_at)"
                " VALUES ('u1', :score, 0, 5, :at)"
            ),
            {"score": score - 30, "at": OLD[-1][0]},
        )


async def insert(
    conn: AsyncConnection,
    at: datetime,
    points: int,
    score: int,
    version: int,
    key: str | None,
    voids: int | None = None,
) -> int:
    row = await conn.execute(
        sa.text(
            "INSERT INTO score_events (user_id, action_type, points, new_score, reached_at_us,"
            " version, idempotency_key, request_hash, created_at, region, at_us, voids, source)"
            " VALUES ('u1', 'TASK_COMPLETED', :points, :score, 0, :version, :key, 'h', :at,"
            " NULL, :at_us, :voids, 'user') RETURNING id"
        ),
        {
            "points": points,
            "score": score,
            "version": version,
            "key": key,
            "at": at,
            "at_us": int(at.timestamp() * 1_000_000),
            "voids": voids,
        },
    )
    return int(row.scalar_one())


async def events(url: str) -> list[tuple[Any, ...]]:
    async with raw(url) as conn:
        rows = await conn.execute(sa.text("SELECT * FROM score_events ORDER BY id"))
        return [tuple(row) for row in rows]


async def refused(url: str, statement: str) -> bool:
    try:
        async with raw(url) as conn:
            await conn.execute(sa.text(statement))
    except sa.exc.DBAPIError as exc:
        assert "append-only" in str(exc)
        return True
    return False


def keyed(key: str, points: int) -> ScoreCommand:
    return ScoreCommand("u1", "TASK_COMPLETED", points, idempotency_key=key, request_hash="h")


async def test_0009_keeps_a_populated_log(database_url: str) -> None:
    await populate_0007(database_url)
    before = await events(database_url)
    assert len(before) == 5
    await run_migrations(database_url)
    assert await events(database_url) == before  # every row, id and value
    if database_url.startswith("postgresql"):
        async with raw(database_url) as conn:
            rows = await conn.execute(
                sa.text("SELECT id, tableoid::regclass::text FROM score_events ORDER BY id")
            )
            where = dict(rows.all())
        assert where == {
            1: partition_name((2025, 3)),
            2: partition_name((2025, 3)),
            3: partition_name((2025, 4)),
            4: partition_name((2026, 1)),
            5: partition_name((2026, 1)),
        }
        tables = ["score_events", partition_name((2025, 3)), partition_name((2026, 1))]
        for table in tables:
            for statement in (*REFUSALS, "TRUNCATE {t}"):
                assert await refused(database_url, statement.format(t=table))
    else:
        for statement in REFUSALS:
            assert await refused(database_url, statement.format(t="score_events"))
    store = await SqlStore.open(database_url)
    try:
        # The keys answer with their original events; another body conflicts, as before.
        (march,) = await store.record_events([keyed("k-march", 10)])
        assert march.outcome is Outcome.REPLAYED and march.event is not None
        assert (march.event.event_id, march.event.new_score) == (1, 10)
        (other,) = await store.record_events([replace(keyed("k-january", 40), request_hash="x")])
        assert other.outcome is Outcome.CONFLICT
        # The sequence goes on from the last id; a void stays the only one.
        (new,) = await store.record_events([keyed("k-new", 5)])
        assert new.outcome is Outcome.RECORDED and new.event is not None
        assert new.event.event_id == 6 and new.event.new_score == 75
        with pytest.raises(AlreadyVoided):
            await store.void_event(3, "admin:root")
        voided = await store.void_event(4, "admin:root")
        assert voided.event.event_id == 7 and voided.event.points == -40
        with pytest.raises(AlreadyVoided):
            await store.void_event(4, "admin:root")
    finally:
        await store.close()


async def test_0009_downgrade_keeps_the_log(database_url: str) -> None:
    await populate_0007(database_url)
    await run_migrations(database_url)
    store = await SqlStore.open(database_url)
    try:
        await store.record_events([keyed("k-new", 5)])
    finally:
        await store.close()
    after = await events(database_url)
    await asyncio.to_thread(command.downgrade, alembic_config(database_url), "0007")
    assert await current_revision(database_url) == "0007"
    assert await events(database_url) == after
    for statement in REFUSALS:
        assert await refused(database_url, statement.format(t="score_events"))
    async with raw(database_url) as conn:  # the id sequence kept its place
        next_id = await insert(conn, datetime(2026, 2, 1, tzinfo=UTC), 1, 76, 7, None)
    assert next_id == 7
    await run_migrations(database_url)
    assert len(await events(database_url)) == 7
