"""`SqlStore`'s anomaly-rule tables (`store.flags.FlagStore`; docs/RULES.md). A mixin like
`store.sql_outbox.Outbox`.

On SQLite the rules' writes go through the batches' own writer (`SqliteWriter`: one
connection, one thread), so they queue behind a batch instead of contending for SQLite's write
lock from a second connection, whose busy handler sleeps up to 100 ms at a time: measured, that
contention cut the embedded ingest bench to a quarter.

Writes lock rows in one order (sorted keys) so that two processes tallying overlapping
batches on PostgreSQL wait for each other rather than deadlock. A flag is inserted with
`ON CONFLICT (user_id, rule, window_id) DO NOTHING RETURNING`: only the writer that inserted
it gets the row back, and only that writer enqueues its webhook, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scoreboard.domain.rules import HOUR_SECONDS, MINUTE_SECONDS, OPEN, RESOLVED, Trip
from scoreboard.domain.times import rfc3339, utcnow
from scoreboard.store.base import AuditEntry
from scoreboard.store.engine import Engines, insert
from scoreboard.store.flags import Activity, FlagRecord, StatusChange, Tally
from scoreboard.store.guard import Guard, unit_of_work
from scoreboard.store.schema_rules import flags, rule_addresses, rule_points
from scoreboard.store.sql_admin import append_audit
from scoreboard.store.sql_batch import chunks
from scoreboard.store.sql_moderation import change_status
from scoreboard.store.sql_outbox import enqueue

US = 1_000_000


def flag_from_row(row: Any) -> FlagRecord:
    return FlagRecord(
        flag_id=int(row.flag_id),
        user_id=row.user_id,
        rule=row.rule,
        window_id=row.window_id,
        detail=dict(row.detail),
        created_at=row.created_at,
        status=row.status,
        resolution=row.resolution,
        resolved_by=row.resolved_by,
        resolved_at=row.resolved_at,
        reason=row.reason,
    )


def flag_webhook_data(flag: FlagRecord) -> dict[str, Any]:
    """The `user.flagged` webhook's `data` (docs/WEBHOOKS.md)."""
    return {
        "flag_id": flag.flag_id,
        "user_id": flag.user_id,
        "rule": flag.rule,
        "detail": flag.detail,
        "created_at": rfc3339(flag.created_at),
    }


def tally(conn: sa.Connection, activities: Sequence[Activity]) -> list[Tally]:
    """`FlagStore.tally_activity` inside the caller's write transaction."""
    dialect = conn.dialect.name
    points: dict[tuple[str, int], int] = {}
    seen: dict[tuple[str, str], int] = {}
    for a in activities:
        key = (a.user_id, a.at_us // US)
        points[key] = points.get(key, 0) + a.points
        if a.address_hash is not None:
            pair = (a.address_hash, a.user_id)
            seen[pair] = max(seen.get(pair, a.at_us), a.at_us)
    if points:
        stmt = insert(dialect, rule_points)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["user_id", "second"],
                set_={"points": rule_points.c.points + stmt.excluded.points},
            ),
            [{"user_id": u, "second": s, "points": p} for (u, s), p in sorted(points.items())],
        )
    if seen:
        stmt = insert(dialect, rule_addresses)
        later = sa.case(
            (stmt.excluded.last_at_us > rule_addresses.c.last_at_us, stmt.excluded.last_at_us),
            else_=rule_addresses.c.last_at_us,
        )
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["address_hash", "user_id"], set_={"last_at_us": later}
            ),
            [
                {"address_hash": h, "user_id": u, "last_at_us": at}
                for (h, u), at in sorted(seen.items())
            ],
        )
    # One grouped read per batch, not one per event: each user's points in the minute
    # ending at the batch's latest second, each address's accounts in the hour ending at the
    # batch's latest event (a batch spans well under a second: docs/RULES.md).
    latest = max(a.at_us for a in activities)
    sums = _points_in_minute(conn, sorted({a.user_id for a in activities}), latest // US)
    counts = {
        h: _accounts(conn, h, latest)
        for h in sorted({a.address_hash for a in activities if a.address_hash is not None})
    }
    return [
        Tally(
            sums.get(a.user_id, 0),
            None if a.address_hash is None else counts[a.address_hash],
        )
        for a in activities
    ]


def _points_in_minute(conn: sa.Connection, users: list[str], second: int) -> dict[str, int]:
    t = rule_points
    found: dict[str, int] = {}
    for chunk in chunks(users):
        rows = conn.execute(
            sa.select(t.c.user_id, sa.func.sum(t.c.points))
            .where(
                t.c.user_id.in_(chunk),
                t.c.second > second - MINUTE_SECONDS,
                t.c.second <= second,
            )
            .group_by(t.c.user_id)
        ).all()
        found.update((row[0], int(row[1])) for row in rows)
    return found


def _accounts(conn: sa.Connection, address_hash: str, at_us: int) -> int:
    t = rule_addresses
    count = conn.execute(
        sa.select(sa.func.count()).where(
            t.c.address_hash == address_hash, t.c.last_at_us > at_us - HOUR_SECONDS * US
        )
    ).scalar_one()
    return int(count)


def add(conn: sa.Connection, trips: Sequence[Trip], webhook_type: str | None) -> list[FlagRecord]:
    """`FlagStore.add_flags` inside the caller's write transaction."""
    now = utcnow()
    written = []
    for trip in sorted(trips, key=lambda t: (t.user_id, t.rule, t.window)):
        row = conn.execute(
            insert(conn.dialect.name, flags)
            .values(
                user_id=trip.user_id,
                rule=trip.rule,
                window_id=trip.window,
                detail=trip.detail,
                created_at=now,
                status=OPEN,
            )
            .on_conflict_do_nothing(index_elements=["user_id", "rule", "window_id"])
            .returning(*flags.c)
        ).first()
        if row is None:
            continue
        flag = flag_from_row(row)
        written.append(flag)
        if webhook_type is not None:
            enqueue(conn, webhook_type, flag_webhook_data(flag), now=now)
    return written


class Flags:
    """The rules' methods; `SqlStore` sets the attributes below."""

    _engines: Engines
    _guard: Guard

    @property
    def guard(self) -> Guard:
        return self._guard

    @unit_of_work
    async def tally_activity(self, activities: Sequence[Activity]) -> list[Tally]:
        if not activities:
            return []
        writer = self._engines.batch_writer
        if writer is not None:  # SQLite: take turns with the batches, not SQLite's busy wait
            return await writer.run(tally, activities)
        async with self._engines.write.begin() as conn:
            return await conn.run_sync(tally, activities)

    @unit_of_work
    async def add_flags(
        self, trips: Sequence[Trip], *, webhook_type: str | None = None
    ) -> list[FlagRecord]:
        if not trips:
            return []
        writer = self._engines.batch_writer
        if writer is not None:
            return await writer.run(add, trips, webhook_type)
        async with self._engines.write.begin() as conn:
            return await conn.run_sync(add, trips, webhook_type)

    @unit_of_work
    async def get_flag(self, flag_id: int) -> FlagRecord | None:
        async with self._engines.read.begin() as conn:
            row = (await conn.execute(sa.select(flags).where(flags.c.flag_id == flag_id))).first()
        return None if row is None else flag_from_row(row)

    @unit_of_work
    async def flags_page(
        self, status: str | None, limit: int, before: int | None = None
    ) -> list[FlagRecord]:
        stmt = sa.select(flags).order_by(flags.c.flag_id.desc()).limit(limit)
        if status is not None:
            stmt = stmt.where(flags.c.status == status)
        if before is not None:
            stmt = stmt.where(flags.c.flag_id < before)
        async with self._engines.read.begin() as conn:
            return [flag_from_row(row) for row in await conn.execute(stmt)]

    @unit_of_work
    async def resolve_flag(
        self,
        flag_id: int,
        resolution: str,
        *,
        audit: AuditEntry,
        change: StatusChange | None = None,
    ) -> FlagRecord | None:
        now = utcnow()
        stmt = (
            sa.update(flags)
            .where(flags.c.flag_id == flag_id, flags.c.status == OPEN)
            .values(
                status=RESOLVED,
                resolution=resolution,
                resolved_by=audit.actor,
                resolved_at=now,
                reason=audit.reason,
            )
            .returning(*flags.c)
        )
        async with self._engines.write.begin() as conn:
            row = (await conn.execute(stmt)).first()
            if row is None:
                return None
            if change is not None:
                await _change(conn, change)
            await append_audit(conn, audit, now)
        return flag_from_row(row)

    @unit_of_work
    async def open_flags_of(self, user_id: str) -> int:
        stmt = sa.select(sa.func.count()).where(flags.c.user_id == user_id, flags.c.status == OPEN)
        async with self._engines.read.begin() as conn:
            return int((await conn.execute(stmt)).scalar_one())

    @unit_of_work
    async def prune_rule_activity(self, before_us: int) -> int:
        async with self._engines.write.begin() as conn:
            points = await conn.execute(
                sa.delete(rule_points).where(rule_points.c.second < before_us // US)
            )
            seen = await conn.execute(
                sa.delete(rule_addresses).where(rule_addresses.c.last_at_us < before_us)
            )
        return int(points.rowcount or 0) + int(seen.rowcount or 0)


async def _change(conn: AsyncConnection, change: StatusChange) -> None:
    await change_status(conn, change.user_id, change.status, change.audit, change.webhook)
