"""Engines for the store: one recipe per database, chosen from the URL.

SQLite: WAL, `busy_timeout`, foreign keys on. The driver's own transaction handling is switched
off (`isolation_level = None`) so that SQLAlchemy's "begin" event decides how a transaction
starts: the write engine takes the write lock up front with `BEGIN IMMEDIATE` (no deadlock-prone
lock upgrade half way through). The read engine never takes the write lock, so readers never
queue behind the writer: a single-statement read runs without BEGIN (the statement is its own
snapshot, and skipping BEGIN saves a third of a read's round trips through aiosqlite's thread),
a connection with the `SNAPSHOT` execution option gets a deferred `BEGIN`, so all its
statements read one WAL snapshot. The write engine has ONE connection: SQLite has one writer
anyway, and queueing in the pool is cheaper than spinning on the busy lock. Score batches, the
one hot write, have their own connection and thread (`SqliteWriter`): a batch is one hop.

PostgreSQL: asyncpg with connect and command timeouts, `pool_pre_ping`, and one engine for both;
board rebuilds (long transactions whose statements may each take more than a request's bound)
get an engine of their own without a pool, whose command timeout is the stall bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

R = TypeVar("R")

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


def configure_sqlite(
    engine: AsyncEngine | Engine, *, begin: str | None, busy_timeout_ms: int
) -> None:
    """Apply the SQLite recipe to an engine.

    `begin` is the statement that opens transactions; None for a read engine, which opens one
    (a deferred BEGIN) only on connections with the `SNAPSHOT` execution option.
    """

    target = engine.sync_engine if isinstance(engine, AsyncEngine) else engine

    @event.listens_for(target, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # no implicit BEGIN/COMMIT by the driver
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(target, "begin")
    def _on_begin(connection: Connection) -> None:
        if begin is not None:
            connection.exec_driver_sql(begin)
        elif connection.get_execution_options().get(SNAPSHOT):
            connection.exec_driver_sql("BEGIN")


class SqliteWriter:
    """The score batches' writer on SQLite: a synchronous engine (the standard library's
    driver) with one connection, used from one thread of its own. A whole batch (BEGIN
    IMMEDIATE, its statements, COMMIT) is then one hop from the event loop, where through
    aiosqlite every statement costs several (cursor, execute, fetch and close are a hop each):
    less CPU per batch, and a lone event no longer waits for a dozen thread wake-ups.

    It is a second writing connection beside the write engine's (users, actions): the two
    take turns on SQLite's write lock through `busy_timeout`. Work given to `run` runs to its
    end even when the caller stops waiting (a thread cannot be cancelled); the next waits.
    """

    def __init__(self, url: URL, *, timeout: float, busy_timeout_ms: int) -> None:
        self._engine = create_engine(
            url.set(drivername="sqlite+pysqlite"),
            pool_size=1,
            max_overflow=0,
            pool_timeout=timeout,
            # Created and used in the writer thread; only `dispose` runs elsewhere, after it.
            connect_args={"timeout": timeout, "check_same_thread": False},
        )
        configure_sqlite(self._engine, begin="BEGIN IMMEDIATE", busy_timeout_ms=busy_timeout_ms)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")

    async def run(self, work: Callable[..., R], *args: Any) -> R:
        """`work(connection, *args)` in one write transaction, in the writer thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._in_transaction, work, args)

    def _in_transaction(self, work: Callable[..., R], args: tuple[Any, ...]) -> R:
        with self._engine.begin() as conn:
            return work(conn, *args)

    async def dispose(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._engine.dispose)
        self._thread.shutdown(wait=False)


@dataclass(frozen=True, slots=True)
class Engines:
    """The write engine and the read engine (one and the same on PostgreSQL), and on SQLite
    the score batches' writer."""

    write: AsyncEngine
    read: AsyncEngine
    batch_writer: SqliteWriter | None = None
    rebuild: AsyncEngine | None = None  # PostgreSQL: board rebuilds (SQLite: `batch_writer`)

    @property
    def dialect(self) -> str:
        return self.write.dialect.name

    async def dispose(self) -> None:
        if self.batch_writer is not None:
            await self.batch_writer.dispose()
        await self.write.dispose()
        if self.read is not self.write:
            await self.read.dispose()
        if self.rebuild is not None:
            await self.rebuild.dispose()


def create_engines(url: str | URL, timeout: float, stall: float | None = None) -> Engines:
    """The engines for `url`; `stall` bounds each statement of a board rebuild on PostgreSQL
    (`timeout` when None or shorter)."""
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
        rebuild = create_async_engine(
            parsed,
            poolclass=NullPool,
            connect_args={"timeout": timeout, "command_timeout": max(timeout, stall or 0.0)},
        )
        return Engines(engine, engine, rebuild=rebuild)
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
    writer = SqliteWriter(parsed, timeout=timeout, busy_timeout_ms=busy_ms)
    return Engines(write, read, writer)
