"""Engines for the store: one recipe per database, chosen from the URL.

SQLite: WAL, `busy_timeout`, foreign keys on. The driver's own transaction handling is switched
off (`isolation_level = None`) so that SQLAlchemy's "begin" event decides how a transaction
starts: the write engine takes the write lock up front with `BEGIN IMMEDIATE` (no deadlock-prone
lock upgrade half way through). The read engine never takes the write lock, so readers never
queue behind the writer: a single-statement read runs without BEGIN (the statement is its own
snapshot, and skipping BEGIN saves a third of a read's round trips through aiosqlite's thread),
a connection with the `SNAPSHOT` execution option gets a deferred `BEGIN`, so all its
statements read one WAL snapshot. The write engine has ONE connection: SQLite has one writer
anyway, and queueing in the pool is cheaper than spinning on the busy lock.

PostgreSQL: asyncpg with connect and command timeouts, `pool_pre_ping`, and one engine for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import URL, event, make_url
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

SUPPORTED = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}

Insert = postgresql.Insert | sqlite.Insert

# Execution option: this read connection's statements must all see one snapshot.
SNAPSHOT = "scoreboard_snapshot"


def async_url(url: str | URL) -> URL:
    """The URL with the async driver this store uses (`sqlite://` → `sqlite+aiosqlite://`)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED:
        raise ValueError(f"Unsupported database {backend!r}; use SQLite or PostgreSQL.")
    return parsed.set(drivername=SUPPORTED[backend])


def sqlite_file(url: URL) -> Path | None:
    """The database file of a SQLite URL; None for other databases and in-memory SQLite."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(str(url.database))


def ensure_sqlite_dir(url: URL) -> None:
    path = sqlite_file(url)
    if path is not None:
        path.expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)


def insert(dialect_name: str, table: Any) -> Insert:
    """INSERT with ON CONFLICT support for the given dialect."""
    if dialect_name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def configure_sqlite(engine: AsyncEngine, *, begin: str | None, busy_timeout_ms: int) -> None:
    """Apply the SQLite recipe to an engine.

    `begin` is the statement that opens transactions; None for a read engine, which opens one
    (a deferred BEGIN) only on connections with the `SNAPSHOT` execution option.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # no implicit BEGIN/COMMIT by the driver
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if begin is not None:
            connection.exec_driver_sql(begin)
        elif connection.get_execution_options().get(SNAPSHOT):
            connection.exec_driver_sql("BEGIN")


@dataclass(frozen=True, slots=True)
class Engines:
    """The write engine and the read engine (one and the same on PostgreSQL)."""

    write: AsyncEngine
    read: AsyncEngine

    @property
    def dialect(self) -> str:
        return self.write.dialect.name

    async def dispose(self) -> None:
        await self.write.dispose()
        if self.read is not self.write:
            await self.read.dispose()


def create_engines(url: str | URL, timeout: float) -> Engines:
    parsed = async_url(url)
    if parsed.get_backend_name() == "postgresql":
        engine = create_async_engine(
            parsed,
            pool_pre_ping=True,
            pool_timeout=timeout,
            pool_size=10,
            max_overflow=10,
            connect_args={"timeout": timeout, "command_timeout": timeout},
        )
        return Engines(engine, engine)
    busy_ms = int(timeout * 1000)
    if sqlite_file(parsed) is None:
        # Every engine (the migrator's, the reader's) would see its own empty database.
        raise ValueError("In-memory SQLite is not supported; give a database file.")
    connect_args = {"timeout": timeout}
    write = create_async_engine(
        parsed, pool_size=1, max_overflow=0, pool_timeout=timeout, connect_args=connect_args
    )
    configure_sqlite(write, begin="BEGIN IMMEDIATE", busy_timeout_ms=busy_ms)
    read = create_async_engine(
        parsed,
        # Few: every connection is a thread contending for the GIL with the event loop, and
        # reads are short; measured, 2-4 connections serve a burst fastest.
        pool_size=4,
        max_overflow=4,
        pool_timeout=timeout,
        # Every read connection is used in a context that ends its transaction; a reset on
        # return would only add a round trip.
        pool_reset_on_return=None,
        connect_args=connect_args,
    )
    configure_sqlite(read, begin=None, busy_timeout_ms=busy_ms)
    return Engines(write, read)
