"""`SqlStore`'s webhook outbox (API.md section 6, docs/WEBHOOKS.md): `enqueue` inside any
store transaction, the claims and outcomes of the delivery worker, and the delivery log.

A mixin like `store.sql_friends.Friends`. Claims lease rows rather than holding their lock
while a webhook is sent: the claim is one short transaction (on PostgreSQL `FOR UPDATE SKIP
LOCKED`, so two processes never claim the same row and never wait for each other; SQLite's
`BEGIN IMMEDIATE` serializes its one process's claims), the HTTP call happens outside any
transaction, and `settle_webhook` records the outcome. A process that dies mid-attempt leaves
a lease that ends: the row is due again (at least once).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from scoreboard.domain.times import utcnow
from scoreboard.store.engine import Engines, insert
from scoreboard.store.guard import Guard, unit_of_work
from scoreboard.store.outbox import Attempt, DeliveryRecord, OutboxEntry
from scoreboard.store.schema import webhook_deliveries, webhook_outbox

ERROR_CHARS = 500  # the width of `last_error` and `error`


def enqueue(
    conn: sa.Connection,
    type: str,
    data: Mapping[str, Any],
    dedupe_key: str | None = None,
    *,
    now: datetime | None = None,
) -> str | None:
    """Append a webhook to the outbox inside the caller's (sync) transaction, due at once:
    committed with its cause or not at all. Its id (the payload's `id`), or None when a
    webhook with `dedupe_key` exists (`INSERT .. ON CONFLICT DO NOTHING`: of any number of
    enqueues of one key, in any processes, exactly one row is written)."""
    at = now or utcnow()
    row = {
        "id": uuid.uuid4().hex,
        "type": type,
        "dedupe_key": dedupe_key,
        "payload": dict(data),
        "created_at": at,
        "next_attempt_at": at,
        "attempts": 0,
    }
    stmt = (
        insert(conn.dialect.name, webhook_outbox)
        .values(row)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(webhook_outbox.c.id)
    )
    written = conn.execute(stmt).scalar_one_or_none()
    return None if written is None else str(written)


def claim(
    conn: sa.Connection, now: datetime, lease_until: datetime, limit: int
) -> list[OutboxEntry]:
    """The claim of `Store.claim_webhooks`, inside the caller's write transaction."""
    t = webhook_outbox
    due = (
        sa.select(t.c.id, t.c.type, t.c.payload, t.c.created_at, t.c.attempts)
        .where(t.c.next_attempt_at <= now)
        .order_by(t.c.next_attempt_at, t.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    rows = conn.execute(due).all()
    if not rows:
        return []
    conn.execute(
        sa.update(t)
        .where(t.c.id.in_([row.id for row in rows]))
        .values(next_attempt_at=lease_until, attempts=t.c.attempts + 1)
    )
    return [
        OutboxEntry(row.id, row.type, dict(row.payload), row.created_at, int(row.attempts) + 1)
        for row in rows
    ]


def settle(conn: sa.Connection, attempt: Attempt) -> None:
    """The outcome of `Store.settle_webhook`, inside the caller's write transaction."""
    error = None if attempt.error is None else attempt.error[:ERROR_CHARS]
    conn.execute(
        sa.insert(webhook_deliveries).values(
            outbox_id=attempt.webhook_id,
            attempt=attempt.attempt,
            at=attempt.at,
            status_code=attempt.status_code,
            error=error,
            duration_ms=attempt.duration_ms,
        )
    )
    t = webhook_outbox
    outcome: dict[str, Any] = {"next_attempt_at": attempt.next_attempt_at, "last_error": error}
    if attempt.delivered:
        outcome = {"next_attempt_at": None, "last_error": None, "delivered_at": attempt.at}
    # Only the claimer of this attempt decides: after a lost lease, another holds the row.
    conn.execute(
        sa.update(t)
        .where(t.c.id == attempt.webhook_id, t.c.attempts == attempt.attempt)
        .values(outcome)
    )


class Outbox:
    """The outbox methods; `SqlStore` sets the attributes below."""

    _engines: Engines
    _guard: Guard

    @property
    def guard(self) -> Guard:
        return self._guard

    @unit_of_work
    async def enqueue_webhook(
        self, type: str, data: Mapping[str, Any], dedupe_key: str | None = None
    ) -> str | None:
        async with self._engines.write.begin() as conn:
            return await conn.run_sync(enqueue, type, data, dedupe_key)

    @unit_of_work
    async def claim_webhooks(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[OutboxEntry]:
        async with self._engines.write.begin() as conn:
            return await conn.run_sync(claim, now, lease_until, limit)

    @unit_of_work
    async def settle_webhook(self, attempt: Attempt) -> None:
        async with self._engines.write.begin() as conn:
            await conn.run_sync(settle, attempt)

    @unit_of_work
    async def webhook_deliveries(
        self, limit: int, before: int | None = None
    ) -> list[DeliveryRecord]:
        d, t = webhook_deliveries, webhook_outbox
        stmt = (
            sa.select(d, t.c.type)
            .join(t, t.c.id == d.c.outbox_id)
            .order_by(d.c.id.desc())
            .limit(limit)
        )
        if before is not None:
            stmt = stmt.where(d.c.id < before)
        async with self._engines.read.begin() as conn:
            return [
                DeliveryRecord(
                    int(row.id),
                    row.outbox_id,
                    row.type,
                    int(row.attempt),
                    row.at,
                    row.status_code,
                    row.error,
                    int(row.duration_ms),
                )
                for row in await conn.execute(stmt)
            ]
