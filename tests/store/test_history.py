"""History that stays cheap (docs/OPERATIONS.md, "History and retention"): the events'
monthly partitions on PostgreSQL, created ahead (at start-up, by several processes at once) and
by a write that needs one, append-only on every partition, pruned by reads of a time range.
The retention of idempotency keys: tests/store/test_idempotency_retention.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool
from tests.api.conftest import make_settings
from tests.conftest import lifespan

from scoreboard.app import create_app
from scoreboard.store.base import Outcome, ScoreCommand
from scoreboard.store.migrate import run_migrations
from scoreboard.store.schema import score_events
from scoreboard.store.sql import SqlStore
from scoreboard.store.sql_partitions import add_months, month_of, partition_name, recorded_in

REFUSALS = ("UPDATE {t} SET points = 1", "DELETE FROM {t}", "TRUNCATE {t}")


@asynccontextmanager
async def raw(url: str) -> AsyncIterator[AsyncConnection]:
    """A connection of the test's own, beside the store's, in one transaction."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            yield conn
    finally:
        await engine.dispose()


async def partitions(url: str) -> set[str]:
    async with raw(url) as conn:
        rows = await conn.execute(
            sa.text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'score_events'::regclass"
            )
        )
        return {row[0] for row in rows}


async def insert_event(url: str, user_id: str, created_at: datetime) -> str:
    """An event inserted as a row (the log takes INSERT); the partition it landed in."""
    async with raw(url) as conn:
        row = await conn.execute(
            sa.text(
                "INSERT INTO score_events (user_id, action_type, points, new_score,"
                " reached_at_us, version, created_at) VALUES (:u, 'T', 1, 1, 0, 1, :at)"
                " RETURNING tableoid::regclass::text"
            ),
            {"u": user_id, "at": created_at},
        )
        return str(row.scalar_one())


async def refused(url: str, statement: str) -> bool:
    try:
        async with raw(url) as conn:
            await conn.execute(sa.text(statement))
    except sa.exc.DBAPIError as exc:
        assert "append-only" in str(exc)
        return True
    return False


def first_of(month: tuple[int, int], day: int = 1) -> datetime:
    return datetime(month[0], month[1], day, 12, tzinfo=UTC)


@pytest.fixture
async def pg_store(fresh_pg_url: str) -> AsyncIterator[SqlStore]:
    await run_migrations(fresh_pg_url)
    store = await SqlStore.open(fresh_pg_url)
    try:
        yield store
    finally:
        await store.close()


# -- partitions (PostgreSQL) -------------------------------------------------------------------
async def test_partitions_are_created_ahead_at_start_up(fresh_pg_url: str, tmp_path: Path) -> None:
    await run_migrations(fresh_pg_url)
    now = month_of(datetime.now(UTC))
    ahead = {partition_name(add_months(now, i)) for i in range(1, 4)}
    async with raw(fresh_pg_url) as conn:  # as if the migration ran months ago
        for name in ahead:
            await conn.execute(sa.text(f"DROP TABLE {name}"))
    assert not ahead & await partitions(fresh_pg_url)
    app = create_app(make_settings(fresh_pg_url, tmp_path, db_timeout_seconds=30))
    async with lifespan(app):
        assert ahead | {partition_name(now)} <= await partitions(fresh_pg_url)
    async with raw(fresh_pg_url) as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO users (user_id, username, display_name, created_at)"
                " VALUES ('u1', 'alice', 'Alice', now())"
            )
        )
    for i in range(1, 4):  # each one takes its month's events, append-only
        month = add_months(now, i)
        assert await insert_event(fresh_pg_url, "u1", first_of(month)) == partition_name(month)
        for statement in REFUSALS:
            assert await refused(fresh_pg_url, statement.format(t=partition_name(month)))


async def test_several_processes_create_a_month_once(fresh_pg_url: str) -> None:
    await run_migrations(fresh_pg_url)
    later = datetime(2031, 5, 10, tzinfo=UTC)
    stores = [await SqlStore.open(fresh_pg_url, timeout=30) for _ in range(3)]  # a loaded host
    try:
        made = await asyncio.gather(*(s.ensure_partitions(now=later) for s in stores))
        names = [partition_name((2031, m)) for m in (5, 6, 7, 8)]
        assert sorted(name for created in made for name in created) == names
        assert await stores[0].ensure_partitions(now=later) == []
    finally:
        for store in stores:
            await store.close()
    assert set(names) <= await partitions(fresh_pg_url)


async def test_an_event_in_a_future_month(pg_store: SqlStore, fresh_pg_url: str) -> None:
    """Months ahead take events; a month beyond them has no partition (there is no default
    one) until it is created."""
    user = await pg_store.create_user("alice", None, "Alice")
    await pg_store.ensure_partitions()
    soon = add_months(month_of(datetime.now(UTC)), 2)
    assert await insert_event(fresh_pg_url, user.user_id, first_of(soon)) == partition_name(soon)
    for statement in REFUSALS:
        assert await refused(fresh_pg_url, statement.format(t=partition_name(soon)))
    far = add_months(month_of(datetime.now(UTC)), 40)
    with pytest.raises(sa.exc.DBAPIError, match="no partition"):
        await insert_event(fresh_pg_url, user.user_id, first_of(far))
    assert await pg_store.ensure_partitions(0, now=first_of(far)) == [partition_name(far)]
    assert await insert_event(fresh_pg_url, user.user_id, first_of(far)) == partition_name(far)
    assert await pg_store.count_events() == 2


async def test_a_write_creates_the_partition_its_month_lacks(fresh_pg_url: str) -> None:
    """A service whose upkeep never ran (or failed for months): the write creates it."""
    await run_migrations(fresh_pg_url)
    current = partition_name(month_of(datetime.now(UTC)))
    async with raw(fresh_pg_url) as conn:
        await conn.execute(sa.text(f"DROP TABLE {current}"))
    store = await SqlStore.open(fresh_pg_url)
    try:
        user = await store.create_user("alice", None, "Alice")
        (done,) = await store.record_events([ScoreCommand(user.user_id, "T", 5)])
        assert done.outcome is Outcome.RECORDED
        (again,) = await store.record_events([ScoreCommand(user.user_id, "T", 5)])
        assert again.event is not None and again.event.new_score == 10
    finally:
        await store.close()
    assert current in await partitions(fresh_pg_url)
    for table in ("score_events", current):
        for statement in REFUSALS:
            assert await refused(fresh_pg_url, statement.format(t=table))


async def test_a_read_of_a_time_range_reads_only_its_partitions(
    pg_store: SqlStore, fresh_pg_url: str
) -> None:
    user = await pg_store.create_user("alice", None, "Alice")
    months = [(2025, 10), (2025, 11), (2025, 12)]
    await pg_store.ensure_partitions(2, now=first_of(months[0]))
    for month in months:
        for day in (1, 15, 28):
            await insert_event(fresh_pg_url, user.user_id, first_of(month, day))
    since, until = datetime(2025, 11, 1, tzinfo=UTC), datetime(2025, 12, 1, tzinfo=UTC)
    query = sa.select(sa.func.count()).select_from(score_events).where(recorded_in(since, until))
    async with raw(fresh_pg_url) as conn:
        assert (await conn.execute(query)).scalar_one() == 3
        compiled = query.compile(dialect=conn.dialect)  # the statement as the store sends it
        params = tuple(compiled.params[name] for name in compiled.positiontup or ())
        explain = "EXPLAIN (FORMAT JSON) " + str(compiled)
        plan = (await conn.exec_driver_sql(explain, params)).scalar_one()
    read = set(relations(json.loads(plan) if isinstance(plan, str) else plan))
    assert read == {partition_name((2025, 11))}


def relations(plan: Any) -> Iterator[str]:
    """Every table a plan (EXPLAIN's JSON, decoded) reads."""
    if isinstance(plan, dict):
        if "Relation Name" in plan:
            yield plan["Relation Name"]
        for value in plan.values():
            yield from relations(value)
    elif isinstance(plan, list):
        for item in plan:
            yield from relations(item)
