"""Alembic environment: async engines, one transaction for the whole upgrade, and one migrator
at a time.

Run through `scoreboard.store.migrate.run_migrations(url)`, which passes the URL in
`config.attributes["url"]` (the only entry point: there is no alembic.ini).

Concurrent migrators (several processes starting at once) are serialized: on PostgreSQL by a
transaction-scoped advisory lock taken before Alembic reads the current revision, on SQLite by
`BEGIN IMMEDIATE` (the database's write lock) around the whole upgrade. The second migrator
then finds the schema at head and does nothing.
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from scoreboard.store.engine import async_url, configure_sqlite
from scoreboard.store.migrate import MIGRATION_LOCK_ID, SQLITE_MIGRATION_BUSY_MS
from scoreboard.store.schema import metadata
from scoreboard.store.sql_partitions import include_name

config = context.config


def _url() -> str:
    url = config.attributes.get("url")
    if not url:
        raise RuntimeError("No database URL: run through store.migrate.run_migrations(url).")
    return str(url)


def do_run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        include_name=include_name,  # the events' monthly partitions are not in `metadata`
        render_as_batch=connection.dialect.name == "sqlite",
        # SQLite can run DDL in a transaction once the driver no longer manages transactions
        # (see store/engine.py); the whole upgrade then commits or rolls back as one.
        transactional_ddl=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_ID}
            )
        context.run_migrations()


async def run_async_migrations() -> None:
    url = async_url(_url())
    engine = create_async_engine(url, poolclass=pool.NullPool)
    if url.get_backend_name() == "sqlite":
        configure_sqlite(engine, begin="BEGIN IMMEDIATE", busy_timeout_ms=SQLITE_MIGRATION_BUSY_MS)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


asyncio.run(run_async_migrations())
