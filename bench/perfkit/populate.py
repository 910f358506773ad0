"""Boards of bench users written straight into the store's tables (fast, and consistent).

Users `0..count-1` get deterministic ids (16 hex characters, like the service's), usernames
`bench<n>`; on a scored board each has a total (`user_scores`) and exactly one score event
whose points equal it, so totals = sum of events, as if they had been posted. The schema is
the service's own: `scoreboard migrate` creates it first, these functions only add rows.
SQLite gets `executemany` in one transaction; PostgreSQL gets `COPY` from CSV files that are
kept under `bench/.cache/` (by size), as is a populated SQLite file, so reruns are quick.
"""

from __future__ import annotations

import csv
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from scoreboard.service.tokens import TokenIssuer

CREATED = datetime(2026, 1, 1, tzinfo=UTC)
BASE_US = int(CREATED.timestamp() * 1_000_000)
GOLDEN = 0x9E3779B97F4A7C15  # odd: n -> n * GOLDEN mod 2**64 is a bijection (unique ids)
TABLES = {
    "users": ("user_id", "username", "display_name", "created_at"),
    "user_scores": ("user_id", "score", "reached_at_us", "version", "updated_at"),
    "score_events": (
        "id", "user_id", "action_type", "points", "new_score", "reached_at_us", "version",
        "created_at",
    ),
}  # fmt: skip


def user_id(n: int) -> str:
    return format(((n + 1) * GOLDEN) % 2**64, "016x")


def score_of(n: int, top: int | None = None) -> int:
    """A spread of scores with many ties; `top` users, if given, lead with distinct scores."""
    if top is not None and n < top:
        return 10_000_000 - n * 1000
    return ((n * 7919) % 100_000 + 1) * 10


def rows(table: str, count: int, top: int | None, sqlite: bool) -> Iterator[tuple[object, ...]]:
    """The rows of one table for a board of `count` users (timestamps as each backend stores
    them: naive UTC text on SQLite, RFC 3339 for PostgreSQL's COPY)."""
    created = CREATED.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else CREATED.isoformat()
    for n in range(count):
        uid, score = user_id(n), score_of(n, top)
        if table == "users":
            yield uid, f"bench{n}", f"Bench {n}", created
        elif table == "user_scores":
            yield uid, score, BASE_US + n, 1, created
        else:
            yield n + 1, uid, "TASK_COMPLETED", score, score, BASE_US + n, 1, created


def fill_sqlite(path: Path, count: int, scored: bool, top: int | None = None) -> None:
    """Add the board to a migrated SQLite file, in one transaction."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA synchronous=OFF")
        with conn:
            for table in TABLES if scored else ("users",):
                cols = TABLES[table]
                sql = f"INSERT INTO {table} ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})"
                conn.executemany(sql, rows(table, count, top, sqlite=True))
    finally:
        conn.close()


def cached_sqlite(cache: Path, migrated: Path, count: int) -> Path:
    """A populated SQLite file of `count` scored users, built once from the migrated empty file
    `migrated` (the cache is keyed by size; delete `bench/.cache/` after a schema change)."""
    target = cache / f"board-{count}.db"
    if not target.exists():
        cache.mkdir(parents=True, exist_ok=True)
        building = target.with_suffix(".building")
        shutil.copyfile(migrated, building)
        fill_sqlite(building, count, scored=True)
        building.rename(target)
    return target


def csv_files(cache: Path, count: int, scored: bool, top: int | None) -> dict[str, Path]:
    """CSV files of the board's tables for PostgreSQL's COPY, written once per shape."""
    tag = f"{count}-{'s' if scored else 'u'}-{top or 0}"
    files = {}
    for table in TABLES if scored else ("users",):
        path = cache / f"{table}-{tag}.csv"
        if not path.exists():
            cache.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".partial")
            with partial.open("w", newline="") as handle:
                csv.writer(handle).writerows(rows(table, count, top, sqlite=False))
            partial.rename(path)
        files[table] = path
    return files


async def fill_postgres(
    dsn: str, cache: Path, count: int, scored: bool, top: int | None = None
) -> None:
    """COPY the board into a migrated PostgreSQL database; the event id sequence follows."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        for table, path in csv_files(cache, count, scored, top).items():
            await conn.copy_to_table(table, source=path, columns=TABLES[table], format="csv")
        if scored:
            await conn.execute(
                "SELECT setval(pg_get_serial_sequence('score_events', 'id'), $1)", count
            )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def write_tokens(path: Path, secret: str, users: range) -> list[str]:
    """Bearer tokens of the service's own issuer for users `users`, one a line in `path`."""
    issuer = TokenIssuer(secret, issuer="scoreboard", ttl_seconds=6 * 3600)
    tokens = [issuer.issue(user_id(n))[0] for n in users]
    path.write_text("\n".join(tokens) + "\n")
    return tokens
