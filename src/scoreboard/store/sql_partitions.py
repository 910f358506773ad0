"""Monthly partitions of `score_events` on PostgreSQL (migration 0009; docs/OPERATIONS.md,
"History and retention"). SQLite keeps one table: everything here is a no-op there.

One partition per calendar month in UTC, `score_events_pYYYY_MM`, holding the events whose
`created_at` (the commit's time, never a client's) falls in that month. There is no DEFAULT
partition on purpose: the log is append-only (triggers refuse DELETE), so rows that landed in a
default partition could never be moved out to the month's own partition, and every later
partition would have to scan the default when attached. Instead a partition exists before an
event needs it:

- the service creates the current month and `PARTITIONS_AHEAD` months beyond it at start-up
  and every hour (`service/history.py`), so the month boundary costs the write path nothing;
- and, should that upkeep have failed for months, a write whose month has no partition known
  to this process creates it first, in its own short transaction (`Partitions.ready`): a
  lookup in a set on every other write.

A partition is created as a plain table LIKE the parent (same columns, collations, defaults),
given its TRUNCATE trigger (row triggers, indexes and the foreign key come with the attach), then
attached: `ATTACH PARTITION` takes SHARE UPDATE EXCLUSIVE on the parent, which blocks neither
reads nor inserts, where `CREATE TABLE ... PARTITION OF` would take ACCESS EXCLUSIVE and queue
every write behind any long read of the log. The transaction is short, holds a transaction-scoped
advisory lock (several processes creating the same month: one creates it, the others wait for
it and find it), and gives up on any table's lock after `LOCK_TIMEOUT` rather than queue
writers behind it.

Reads of a time range of the log filter on `created_at` (`recorded_in`): PostgreSQL then reads
only the partitions of those months.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime

import sqlalchemy as sa

from scoreboard.domain.times import utcnow
from scoreboard.store.engine import Engines
from scoreboard.store.guard import Guard, unit_of_work
from scoreboard.store.schema import score_events

PARTITIONS_AHEAD = 3  # months beyond the current one that always have their partition
# Key of the advisory lock of partition creation ("sb-part" in ASCII).
PARTITION_LOCK_ID = 0x73622D70617274
LOCK_TIMEOUT = "2s"  # a creator waiting longer for a lock gives up (the next attempt retries)
APPEND_ONLY = "EXECUTE FUNCTION scoreboard_append_only()"  # migration 0005's function

Month = tuple[int, int]  # (year, month)
_NAME = re.compile(r"^score_events_p(\d{4})_(\d{2})$")


def month_of(at: datetime) -> Month:
    utc = at.astimezone(UTC)
    return utc.year, utc.month


def add_months(month: Month, count: int) -> Month:
    index = month[0] * 12 + month[1] - 1 + count
    return index // 12, index % 12 + 1


def month_start(month: Month) -> datetime:
    return datetime(month[0], month[1], 1, tzinfo=UTC)


def partition_name(month: Month) -> str:
    return f"score_events_p{month[0]:04d}_{month[1]:02d}"


def is_partition(name: str) -> bool:
    """Whether a table name is one of the events' partitions (the schema comparison, which
    knows only the partitioned table, leaves them out)."""
    return _NAME.match(name) is not None


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's `include_name` hook: the schema comparison leaves the partitions out (it
    compares the partitioned table, whose indexes and triggers every partition inherits)."""
    return not (type_ == "table" and name is not None and is_partition(name))


def recorded_in(since: datetime | None, until: datetime | None) -> sa.ColumnElement[bool]:
    """The events recorded in [since, until) (either bound may be open): a range of the
    partition key, so that PostgreSQL reads only the partitions of those months."""
    conditions: list[sa.ColumnElement[bool]] = []
    if since is not None:
        conditions.append(score_events.c.created_at >= since)
    if until is not None:
        conditions.append(score_events.c.created_at < until)
    return sa.and_(sa.true(), *conditions)


def partitioned(conn: sa.Connection) -> bool:
    """Whether `score_events` is partitioned here (PostgreSQL at migration 0009 or later)."""
    if conn.dialect.name != "postgresql":
        return False
    kind = conn.execute(
        sa.text("SELECT relkind::text FROM pg_class WHERE oid = to_regclass('score_events')")
    ).scalar()
    return kind == "p"


def existing(conn: sa.Connection) -> set[Month]:
    """The months that have a partition."""
    rows = conn.execute(
        sa.text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'score_events'::regclass"
        )
    )
    found = (_NAME.match(row[0]) for row in rows)
    return {(int(m.group(1)), int(m.group(2))) for m in found if m is not None}


def create_partitions(conn: sa.Connection, months: Iterable[Month]) -> list[str]:
    """Create the missing partitions among `months` in the caller's transaction (see the
    module docstring); the names of those created here."""
    # Another creator holds this lock for milliseconds (the call's own timeout bounds the wait);
    # the tables' locks below may be held by anything, hence their bound.
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": PARTITION_LOCK_ID})
    conn.execute(sa.text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    have = existing(conn)
    created = []
    for month in sorted(set(months) - have):
        name = partition_name(month)
        lower, upper = month_start(month), month_start(add_months(month, 1))
        conn.exec_driver_sql(f"CREATE TABLE {name} (LIKE score_events INCLUDING DEFAULTS)")
        conn.exec_driver_sql(
            f"CREATE TRIGGER score_events_no_truncate BEFORE TRUNCATE ON {name} {APPEND_ONLY}"
        )
        conn.exec_driver_sql(
            f"ALTER TABLE score_events ATTACH PARTITION {name} FOR VALUES"
            f" FROM ('{lower.isoformat()}') TO ('{upper.isoformat()}')"
        )
        created.append(name)
    return created


class Partitions:
    """One store's partition upkeep, and the months it knows have a partition."""

    def __init__(self, engines: Engines) -> None:
        self._engines = engines
        self._known: set[Month] = set()
        # None until looked up: whether the table is partitioned at all (a database not yet
        # migrated to 0009 is not, and writes then need nothing from here).
        self._partitioned: bool | None = None if engines.dialect == "postgresql" else False

    async def ensure(self, now: datetime, ahead: int = PARTITIONS_AHEAD) -> list[str]:
        """Make sure `now`'s month and the `ahead` months after it have their partition; the
        names of the partitions created (none on SQLite)."""
        if self._partitioned is False:
            return []
        first = month_of(now)
        months = [add_months(first, i) for i in range(ahead + 1)]
        async with self._engines.write.begin() as conn:
            if self._partitioned is None:
                self._partitioned = await conn.run_sync(partitioned)
                if not self._partitioned:
                    return []
            created = await conn.run_sync(create_partitions, months)
        self._known.update(months)
        return created

    async def ready(self, now: datetime) -> None:
        """Before a write of events dated `now`: their month's partition exists."""
        if self._partitioned is False or month_of(now) in self._known:
            return
        await self.ensure(now, 0)


class PartitionUpkeep:
    """The store's partition method; `SqlStore` sets the attributes below."""

    _guard: Guard
    _partitions: Partitions

    @property
    def guard(self) -> Guard:
        return self._guard

    @unit_of_work
    async def ensure_partitions(
        self, ahead: int = PARTITIONS_AHEAD, *, now: datetime | None = None
    ) -> list[str]:
        """On PostgreSQL, the partitions of the events of `now`'s month (default: the
        current one) and the `ahead` months after it, created where missing; the names of
        those created. Safe from several processes at once. [] on SQLite."""
        if ahead < 0:
            raise ValueError("ahead must not be negative")
        return await self._partitions.ensure(now or utcnow(), ahead)
