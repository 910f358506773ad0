"""History that stays cheap: `score_events` partitioned by month on PostgreSQL, the at-most-one
void of an event in its own table, idempotency keys that retention can delete.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

PostgreSQL: `score_events` becomes a table partitioned by RANGE (`created_at`), one partition
per calendar month in UTC (`score_events_pYYYY_MM`), with every existing row moved over:
the old table is renamed, a partitioned table LIKE it (same columns, collations, defaults:
`id` keeps its sequence, which changes owner and is never reset) is created with a partition
for every month from the oldest event's to the current month plus 3 ahead, the rows are copied
with their ids (INSERT ... SELECT), the old table is dropped, and then the primary key (now
(id, created_at): a partitioned table's unique keys hold its partition key), the index on
`user_id`, the index on `voids` (no longer unique, for the same reason), the foreign key to
`users` and the append-only triggers are created on the partitioned table, which gives them to
every partition. Row triggers are inherited by partitions, TRUNCATE triggers are not: each
partition gets its own. `event_voids` (the voided event as primary key) now says that an event
is voided at most once; it is filled from the existing compensations. The foreign key from
`idempotency_keys.event_id` to `score_events` goes: no foreign key can point at a partitioned
table's `id` alone (see `store/schema.py`).

Cost: the whole of `score_events` is copied once and its indexes are built again, under an
ACCESS EXCLUSIVE lock: no event is recorded or read until the migration commits, and the disk
holds the table twice meanwhile. docs/OPERATIONS.md ("History and retention") has figures;
plan a maintenance window for a big table (stop the service, migrate with `scoreboard
migrate`, start it).

SQLite keeps one events table (embedded sites are small): only the index on `voids` (not unique
any more), `event_voids`, and `idempotency_keys` without its foreign key (a copy of that table:
SQLite cannot drop a constraint in place) and with an index on `created_at`.

Both: an index on `idempotency_keys.created_at`, for retention's batches.

Downgrade undoes all of it (on PostgreSQL by copying the events back into one plain table).

Self-contained on purpose (no import of store/schema.py or the store), like 0001: the partition
DDL here is a copy of what `store/sql_partitions.py` runs, as it was when this was written.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AHEAD = 3  # months created beyond the current one (as `store/sql_partitions.py` does)
TRIGGER = "EXECUTE FUNCTION scoreboard_append_only()"  # the function of migration 0005


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _partition_events()
    else:
        op.drop_index("ux_score_events_voids", "score_events")
        op.create_index("ix_score_events_voids", "score_events", ["voids"])
        with op.batch_alter_table("idempotency_keys", recreate="always") as batch:
            batch.drop_constraint("fk_idempotency_keys_event_id_score_events", "foreignkey")
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])
    op.create_table(
        "event_voids",
        sa.Column("event_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("void_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_event_voids"),
    )
    op.execute(
        "INSERT INTO event_voids (event_id, void_id, created_at)"
        " SELECT voids, id, created_at FROM score_events WHERE voids IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_table("event_voids")
    op.drop_index("ix_idempotency_keys_created_at", "idempotency_keys")
    if op.get_bind().dialect.name == "postgresql":
        _unpartition_events()
        return
    with op.batch_alter_table("idempotency_keys", recreate="always") as batch:
        batch.create_foreign_key(
            "fk_idempotency_keys_event_id_score_events", "score_events", ["event_id"], ["id"]
        )
    op.drop_index("ix_score_events_voids", "score_events")
    op.create_index("ux_score_events_voids", "score_events", ["voids"], unique=True)


# -- PostgreSQL --------------------------------------------------------------------------------
def _partition_events() -> None:
    bind = op.get_bind()
    op.execute("LOCK TABLE score_events IN ACCESS EXCLUSIVE MODE")
    sequence = bind.execute(sa.text("SELECT pg_get_serial_sequence('score_events', 'id')"))
    seq = sequence.scalar_one()
    op.execute(
        "ALTER TABLE idempotency_keys DROP CONSTRAINT fk_idempotency_keys_event_id_score_events"
    )
    op.execute("ALTER TABLE score_events RENAME TO score_events_unpartitioned")
    op.execute(f"ALTER SEQUENCE {seq} OWNED BY NONE")  # or dropping the old table drops it
    op.execute(
        "CREATE TABLE score_events (LIKE score_events_unpartitioned INCLUDING DEFAULTS)"
        " PARTITION BY RANGE (created_at)"
    )
    span = "SELECT min(created_at), max(created_at) FROM score_events_unpartitioned"
    oldest, newest = bind.execute(sa.text(span)).one()
    now = datetime.now(UTC)
    first = _month(min(oldest or now, now))
    last = max(_add(_month(now), AHEAD), _month(newest or now))
    # Every month in between, with rows or not: no gap for an event to fall in.
    for year, month in _months(first, last):
        _create_partition(year, month)
    op.execute("INSERT INTO score_events SELECT * FROM score_events_unpartitioned")
    op.execute("DROP TABLE score_events_unpartitioned")  # its indexes and triggers with it
    op.execute(f"ALTER SEQUENCE {seq} OWNED BY score_events.id")
    op.execute(
        "ALTER TABLE score_events ADD CONSTRAINT pk_score_events PRIMARY KEY (id, created_at)"
    )
    _constraints()
    op.create_index("ix_score_events_voids", "score_events", ["voids"])
    op.execute("ANALYZE score_events")  # the planner's statistics of the new partitions


def _create_partition(year: int, month: int) -> None:
    name = f"score_events_p{year:04d}_{month:02d}"
    upper = _add((year, month), 1)
    op.execute(
        f"CREATE TABLE {name} PARTITION OF score_events FOR VALUES"
        f" FROM ('{year:04d}-{month:02d}-01 00:00:00+00')"
        f" TO ('{upper[0]:04d}-{upper[1]:02d}-01 00:00:00+00')"
    )
    op.execute(f"CREATE TRIGGER score_events_no_truncate BEFORE TRUNCATE ON {name} {TRIGGER}")


def _constraints() -> None:
    """What the events table has on top of its columns, in either form (not the primary key,
    nor the index on `voids`)."""
    op.create_foreign_key(
        "fk_score_events_user_id_users", "score_events", "users", ["user_id"], ["user_id"]
    )
    op.create_index("ix_score_events_user_id", "score_events", ["user_id"])
    op.execute(
        f"CREATE TRIGGER score_events_append_only BEFORE UPDATE OR DELETE ON score_events"
        f" FOR EACH ROW {TRIGGER}"
    )
    op.execute(f"CREATE TRIGGER score_events_no_truncate BEFORE TRUNCATE ON score_events {TRIGGER}")


def _unpartition_events() -> None:
    bind = op.get_bind()
    op.execute("LOCK TABLE score_events IN ACCESS EXCLUSIVE MODE")
    seq = bind.execute(sa.text("SELECT pg_get_serial_sequence('score_events', 'id')")).scalar_one()
    op.execute("ALTER TABLE score_events RENAME TO score_events_partitioned")
    op.execute(f"ALTER SEQUENCE {seq} OWNED BY NONE")
    op.execute("CREATE TABLE score_events (LIKE score_events_partitioned INCLUDING DEFAULTS)")
    op.execute("INSERT INTO score_events SELECT * FROM score_events_partitioned")
    op.execute("DROP TABLE score_events_partitioned")  # and every partition
    op.execute(f"ALTER SEQUENCE {seq} OWNED BY score_events.id")
    op.create_primary_key("pk_score_events", "score_events", ["id"])
    _constraints()
    op.create_index("ux_score_events_voids", "score_events", ["voids"], unique=True)
    op.create_foreign_key(
        "fk_idempotency_keys_event_id_score_events",
        "idempotency_keys",
        "score_events",
        ["event_id"],
        ["id"],
    )


def _month(at: datetime) -> tuple[int, int]:
    utc = at.astimezone(UTC)
    return utc.year, utc.month


def _add(month: tuple[int, int], count: int) -> tuple[int, int]:
    index = month[0] * 12 + month[1] - 1 + count
    return index // 12, index % 12 + 1


def _months(first: tuple[int, int], last: tuple[int, int]) -> Iterator[tuple[int, int]]:
    month = first
    while month <= last:
        yield month
        month = _add(month, 1)
