"""`SqlStore`'s event-log query (API.md section 6, "Audit log query"): one keyset page of
`score_events`, newest first, with each event's void partner.

A mixin like `store.sql_friends.Friends`. One statement per page (its own snapshot; on SQLite
the read engine runs it without BEGIN), so a walk of the whole log (`service.event_log`'s
export) is a series of short reads and never holds a connection between pages.

Indexes: the page walks `id` downwards. A user's events come from `ix_score_events_user_id`,
which is (user_id, id) since migration 0010, so a user's page is a range scan of the index
however many events they have (with the index on user_id alone PostgreSQL sorted all of them
for every page). `voided_by` is one probe of `event_voids`' primary key per event (not of
`score_events.voids`, whose index is one per monthly partition on PostgreSQL). Filters on
`action_type` or the time alone walk the primary key from the cursor down, skipping what does
not match: an admin's query, not a hot path (no index on them is paid for on every write).
"""

from __future__ import annotations

import sqlalchemy as sa

from scoreboard.store.engine import Engines
from scoreboard.store.event_log import EventQuery, LoggedEvent
from scoreboard.store.guard import Guard, unit_of_work
from scoreboard.store.schema import event_voids, score_events

EVENT = score_events.alias("e")
VOID = event_voids.alias("v")  # the compensation of EVENT, if any


def _page(query: EventQuery, limit: int, before: int | None) -> sa.Select[tuple[object, ...]]:
    e, v = EVENT.c, VOID.c
    where: list[sa.ColumnElement[bool]] = []
    if before is not None:
        where.append(e.id < before)
    if query.user_id is not None:
        where.append(e.user_id == query.user_id)
    if query.action_type is not None:
        where.append(e.action_type == query.action_type)
    if query.since is not None:
        where.append(e.created_at >= query.since)
    if query.until is not None:
        where.append(e.created_at < query.until)
    return (
        sa.select(
            e.id,
            e.user_id,
            e.action_type,
            e.points,
            e.created_at,
            e.idempotency_key,
            e.voids,
            e.source,
            v.void_id.label("voided_by"),
        )
        .select_from(EVENT.outerjoin(VOID, v.event_id == e.id))
        .where(*where)
        .order_by(e.id.desc())
        .limit(limit)
    )


class EventLog:
    """The event-log method; `SqlStore` sets the attributes below."""

    _engines: Engines
    _guard: Guard

    @property
    def guard(self) -> Guard:
        return self._guard

    @unit_of_work
    async def event_log(
        self, query: EventQuery, limit: int, before: int | None = None
    ) -> list[LoggedEvent]:
        async with self._engines.read.begin() as conn:
            rows = await conn.execute(_page(query, limit, before))
            return [
                LoggedEvent(
                    event_id=int(row.id),
                    user_id=row.user_id,
                    action_type=row.action_type,
                    points=int(row.points),
                    created_at=row.created_at,
                    idempotency_key=row.idempotency_key,
                    voids=None if row.voids is None else int(row.voids),
                    voided_by=None if row.voided_by is None else int(row.voided_by),
                    source=row.source or "user",
                )
                for row in rows
            ]
