"""Capacity, part 2: batch size vs commit latency and cost per event, in the store itself.

`SqlStore.record_events` (what a group commit runs: one transaction for the batch, with the
four default boards' rows) is called in this process with batches of B distinct users (events
spread over a board of `users` users, round-robin), B = 1, 10, 50, 100, 500, `reps` batches
each after a warm-up. Per B: the call's wall time (median, p95: includes the commit's fsync),
this process's CPU per event (SQLAlchemy, asyncpg or the SQLite writer thread), and on
PostgreSQL the CPU of the database's backends (from /proc: the server is local) and the WAL the
batches wrote (pg_walinspect, only transactions that touched this scratch database, so other
databases on the shared server are left out). SQLite for contrast (wall and CPU only).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from scoreboard.store.base import ScoreCommand
from scoreboard.store.migrate import run_migrations
from scoreboard.store.sql import SqlStore

from .env import BenchEnv, pg_query
from .meters import backend_pids, cpu_delta, cpu_of, quantile, wal_held, wal_of_database
from .populate import fill_postgres, fill_sqlite, user_id

WARMUP = 3  # untimed batches before each series (prepared statements, pages in cache)


@dataclass(frozen=True, slots=True)
class BatchFigures:
    backend: str  # "postgresql" | "sqlite"
    size: int
    batches: int
    p50: float  # seconds per record_events call, wall
    p95: float
    client_cpu_per_event: float  # seconds
    server_cpu_per_event: float | None  # PostgreSQL backends; None for SQLite
    wal_per_event: float | None  # bytes
    fpi_per_event: float | None  # bytes of full-page images among them

    @property
    def events_per_core_second(self) -> float:
        """Events one core could commit at this size, client and server CPU together."""
        cpu = self.client_cpu_per_event + (self.server_cpu_per_event or 0.0)
        return 1.0 / cpu if cpu > 0 else float("nan")


def commands(batch: int, size: int, users: int, tag: str) -> list[ScoreCommand]:
    """Batch number `batch` of `size` events, each a distinct user, with fresh keys."""
    first = batch * size
    return [
        ScoreCommand(user_id((first + k) % users), "TASK_COMPLETED", 10, f"{tag}-{first + k}", "h")
        for k in range(size)
    ]


async def series(
    store: SqlStore, size: int, reps: int, users: int, warmup: int = WARMUP
) -> tuple[list[float], float]:
    """`warmup` + `reps` batches of `size`: the timed calls' wall seconds and client CPU."""
    tag = uuid.uuid4().hex[:8]
    for n in range(warmup):
        await store.record_events(commands(n, size, users, f"w{tag}"))
    walls = []
    cpu_started = time.process_time()
    for n in range(reps):
        batch = commands(n, size, users, tag)
        started = time.perf_counter()
        outcomes = await store.record_events(batch)
        walls.append(time.perf_counter() - started)
        if len(outcomes) != size:
            raise RuntimeError(f"record_events answered {len(outcomes)} of {size}")
    return walls, time.process_time() - cpu_started


def reps_for(size: int, events: int, least: int) -> int:
    """Enough batches for `events` events, never fewer than `least` (for the p95)."""
    return max(least, -(-events // size))


@dataclass(frozen=True, slots=True)
class BatchResult:
    figures: list[BatchFigures]
    disk_per_event: float  # PostgreSQL: database size growth over every event recorded
    settings: str  # the server settings that decide commit latency and WAL volume


async def on_postgres(
    env: BenchEnv, name: str, sizes: tuple[int, ...], users: int, events: int, least: int
) -> tuple[list[BatchFigures], float]:
    """The series on the scratch database `name` (created and dropped by the caller), and
    the database's growth per event recorded."""
    import asyncpg

    out = []
    recorded = 0
    url = env.pg_url(name)
    await run_migrations(url)
    await fill_postgres(url, env.cache, users, scored=False)
    admin = await asyncpg.connect(url)
    store = await SqlStore.open(url, timeout=60)
    try:
        await admin.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        oid = int(await admin.fetchval("SELECT oid FROM pg_database WHERE datname = $1", name))
        await store.record_events(commands(0, 1, users, "open"))  # the pool's connection
        size_before = int(await admin.fetchval("SELECT pg_database_size($1)", name))
        for size in sizes:
            reps = reps_for(size, events, least)
            pids = await backend_pids(admin, name)
            before = cpu_of(pids)
            start = await admin.fetchval("SELECT pg_current_wal_insert_lsn()::text")
            walls, client = await series(store, size, reps, users)
            end = await admin.fetchval("SELECT pg_current_wal_flush_lsn()::text")
            after = cpu_of(await backend_pids(admin, name))
            wal = await wal_of_database(admin, start, end, oid)
            n = size * reps
            recorded += n + size * WARMUP
            out.append(
                BatchFigures(
                    "postgresql", size, reps, quantile(walls, 0.5), quantile(walls, 0.95),
                    client / n, cpu_delta(before, after) / n, wal.bytes / n,
                    wal.fpi_bytes / n,
                )
            )  # fmt: skip
        grown = int(await admin.fetchval("SELECT pg_database_size($1)", name)) - size_before
    finally:
        await store.close()
        await admin.close()
    return out, grown / recorded if recorded else float("nan")


async def on_sqlite(
    workdir: Path, sizes: tuple[int, ...], users: int, events: int, least: int
) -> list[BatchFigures]:
    path = workdir / "capbatch.db"
    url = f"sqlite+aiosqlite:///{path}"
    await run_migrations(url)
    fill_sqlite(path, users, scored=False)
    store = await SqlStore.open(url, timeout=60)
    out = []
    try:
        for size in sizes:
            reps = reps_for(size, events, least)
            walls, client = await series(store, size, reps, users)
            n = size * reps
            out.append(
                BatchFigures(
                    "sqlite", size, reps, quantile(walls, 0.5), quantile(walls, 0.95),
                    client / n, None, None, None,
                )
            )  # fmt: skip
    finally:
        await store.close()
    return out


def pg_settings(env: BenchEnv) -> str:
    """The server settings that decide commit latency and WAL volume, for the table's note."""
    names = ("fsync", "synchronous_commit", "full_page_writes", "wal_level", "shared_buffers")
    rows = pg_query(
        env.pg_admin,
        "SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1::text[])",
        list(names),
    )
    return ", ".join(f"{n}={s}{u or ''}" for n, s, u in sorted(rows))


def run(env: BenchEnv, sizes: tuple[int, ...], users: int, events: int, least: int) -> BatchResult:
    with env.scratch_database("capbatch") as name, wal_held(env.pg_admin):
        pg, disk = asyncio.run(on_postgres(env, name, sizes, users, events, least))
    (env.workdir / "capbatch").mkdir(parents=True, exist_ok=True)
    lite = asyncio.run(on_sqlite(env.workdir / "capbatch", sizes, users, events, least))
    return BatchResult(pg + lite, disk, pg_settings(env))
