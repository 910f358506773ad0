"""Migrations: idempotent, safe to run concurrently, and in step with `store/schema.py`."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from scoreboard.store.engine import async_url
from scoreboard.store.migrate import alembic_config, current_revision, run_migrations
from scoreboard.store.schema import metadata
from scoreboard.store.sql import SqlStore
from scoreboard.store.sql_partitions import include_name, is_partition

TABLES = {
    "users",
    "user_scores",
    "score_events",
    "idempotency_keys",
    "actions",
    "board_scores",
    "board_defs",
    "friends",
    "webhook_outbox",
    "webhook_deliveries",
    "api_keys",
    "admin_audit",
    "refresh_tokens",
    "flags",
    "rule_points",
    "rule_addresses",
    "event_voids",
}
WEBHOOK_TABLES = {"webhook_outbox", "webhook_deliveries"}  # no user id column


def head(url: str) -> str:
    revision = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    assert revision is not None
    return revision


async def inspect(url: str, fn: Any) -> Any:
    engine = create_async_engine(async_url(url), poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(fn)
    finally:
        await engine.dispose()


def table_names(conn: Connection) -> set[str]:
    return set(sa.inspect(conn).get_table_names())


def version_rows(conn: Connection) -> list[str]:
    return [row[0] for row in conn.execute(sa.text("SELECT version_num FROM alembic_version"))]


async def test_migrations_are_idempotent(database_url: str) -> None:
    assert await current_revision(database_url) is None
    await run_migrations(database_url)
    await run_migrations(database_url)
    assert await current_revision(database_url) == head(database_url)
    assert await inspect(database_url, table_names) >= TABLES
    assert await inspect(database_url, version_rows) == [head(database_url)]


async def test_schema_matches_the_tables_of_the_code(database_url: str) -> None:
    await run_migrations(database_url)

    def diff(conn: Connection) -> list[Any]:
        opts = {"compare_type": True, "include_name": include_name}
        context = MigrationContext.configure(conn, opts=opts)
        return list(compare_metadata(context, metadata))

    assert await inspect(database_url, diff) == []


async def test_concurrent_migrators_on_postgresql(fresh_pg_url: str) -> None:
    await asyncio.gather(*(run_migrations(fresh_pg_url) for _ in range(3)))
    assert await inspect(fresh_pg_url, version_rows) == [head(fresh_pg_url)]
    assert await inspect(fresh_pg_url, table_names) >= TABLES


async def test_concurrent_migrators_on_sqlite(sqlite_url: str) -> None:
    await asyncio.gather(*(run_migrations(sqlite_url) for _ in range(3)))
    assert await inspect(sqlite_url, version_rows) == [head(sqlite_url)]


MIGRATE = "import asyncio, sys; from scoreboard.store.migrate import run_migrations as m; "
MIGRATE += "asyncio.run(m(sys.argv[1]))"


async def migrate_in_processes(url: str, count: int) -> None:
    """`count` processes, started together, each migrating `url` (as servers do at start)."""
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", MIGRATE, url, stderr=asyncio.subprocess.PIPE
        )
        for _ in range(count)
    ]
    for proc in procs:
        _, err = await asyncio.wait_for(proc.communicate(), 90)
        assert proc.returncode == 0, err.decode()


async def test_concurrent_migrator_processes(database_url: str) -> None:
    await migrate_in_processes(database_url, 3)
    assert await inspect(database_url, version_rows) == [head(database_url)]
    assert await inspect(database_url, table_names) >= TABLES


async def test_sqlite_directory_is_created(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "scoreboard.db"
    url = f"sqlite:///{path}"  # the plain URL form is accepted too
    await run_migrations(url)
    assert path.exists()
    store = await SqlStore.open(url)
    try:
        user = await store.create_user("alice", None, "Alice")
        assert await store.get_user(user.user_id) == user
    finally:
        await store.close()


async def test_plain_postgresql_url(fresh_pg_url: str) -> None:
    plain = fresh_pg_url.replace("postgresql+asyncpg://", "postgresql://")
    await run_migrations(plain)
    assert await current_revision(plain) == head(plain)


async def test_user_ids_sort_in_byte_order_on_postgresql(fresh_pg_url: str) -> None:
    await run_migrations(fresh_pg_url)

    def collations(conn: Connection) -> set[tuple[str, str | None]]:
        rows = conn.execute(
            sa.text(
                "SELECT table_name, collation_name FROM information_schema.columns"
                " WHERE column_name = 'user_id' AND table_schema = 'public'"
            )
        )
        return {(row[0], row[1]) for row in rows}

    found = await inspect(fresh_pg_url, collations)
    no_user_id = {"board_defs", "api_keys", "admin_audit", "event_voids", *WEBHOOK_TABLES}
    # The events' monthly partitions (migration 0009) have the parent's columns.
    assert {table for table, _ in found if not is_partition(table)} == TABLES - no_user_id
    assert any(is_partition(table) for table, _ in found)
    assert {collation for _, collation in found} == {"C"}


async def test_downgrade_then_upgrade_again(database_url: str) -> None:
    await run_migrations(database_url)
    await asyncio.to_thread(command.downgrade, alembic_config(database_url), "base")
    assert await current_revision(database_url) is None
    assert not TABLES & await inspect(database_url, table_names)
    await run_migrations(database_url)
    assert await current_revision(database_url) == head(database_url)


def test_run_migrations_outside_an_event_loop(sqlite_url: str) -> None:
    asyncio.run(run_migrations(sqlite_url))
    assert asyncio.run(current_revision(sqlite_url)) == head(sqlite_url)


@pytest.mark.parametrize("url", ["mysql://x@localhost/db", "oracle://x@localhost/db"])
async def test_unsupported_databases_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="Unsupported database"):
        await run_migrations(url)


async def test_0002_gives_old_events_a_region_and_a_time(database_url: str) -> None:
    """Events from before the boards: their user's region, and `reached_at_us` as their time
    where it is theirs (they moved the score, or were the first); NULL otherwise."""
    await asyncio.to_thread(command.upgrade, alembic_config(database_url), "0001")

    def fill(conn: Connection) -> None:
        conn.execute(
            sa.text(
                "INSERT INTO users (user_id, username, display_name, region, created_at)"
                " VALUES ('u1', 'alice', 'Alice', 'eu', CURRENT_TIMESTAMP)"
            )
        )
        for version, points, reached in ((1, 0, 100), (2, 5, 200), (3, 0, 200)):
            conn.execute(
                sa.text(
                    "INSERT INTO score_events (user_id, action_type, points, new_score,"
                    " reached_at_us, version, created_at)"
                    " VALUES ('u1', 'T', :points, 5, :reached, :version, CURRENT_TIMESTAMP)"
                ),
                {"points": points, "reached": reached, "version": version},
            )
        conn.commit()

    await inspect(database_url, fill)
    await run_migrations(database_url)

    def events(conn: Connection) -> list[tuple[Any, ...]]:
        rows = conn.execute(sa.text("SELECT region, at_us FROM score_events ORDER BY version"))
        return [tuple(row) for row in rows]

    assert await inspect(database_url, events) == [("eu", 100), ("eu", 200), ("eu", None)]
    await asyncio.to_thread(command.downgrade, alembic_config(database_url), "0001")
    assert await current_revision(database_url) == "0001"
