"""Idempotency keys (`idempotency_keys`): a batch's claim and settling of its keys
(`store/sql_scores.py` is the batch), and their retention.

Claim: one multi-row `INSERT .. ON CONFLICT DO NOTHING RETURNING` per batch; the keys it did
not get were taken by an earlier transaction and are read with their events (two SELECTs, only
when there are any). The primary key (user_id, key) is the arbiter: a concurrent claimer
waits for the other's commit and then sees its row.

Retention (`SCOREBOARD_IDEMPOTENCY_RETENTION_DAYS`, 0 keeps every key, as before it existed):
keys older than the retention are deleted, oldest first, `batch` rows per short transaction
with a pause between transactions, so retention never holds a lock for long nor keeps the
SQLite write lock from the batches. The events themselves stay (the log is append-only); an
expired key is free again: the same request sent after its key expired records a NEW event.
A key that expires between a batch's claim and its read of the taken keys is claimed again
(`_claim`), so that request is recorded too, never refused.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import sqlalchemy as sa

from scoreboard.store.base import ScoreCommand
from scoreboard.store.engine import Engines, insert
from scoreboard.store.guard import Guard, unit_of_work
from scoreboard.store.records import event_from_row
from scoreboard.store.schema import idempotency_keys, score_events, users
from scoreboard.store.sql_batch import Batch, BatchKey, NewEvent, Pair, chunks

EXPIRE_BATCH = 1000  # keys deleted per transaction
EXPIRE_PAUSE = 0.05  # seconds between two such transactions: writers get their turn
CLAIM_ATTEMPTS = 3  # a key expiring under a claim is claimed again, this many times at most


def claim_keys(batch: Batch, commands: list[ScoreCommand]) -> None:
    """Claim every (user, key) of the batch; load the ones taken before, with their events."""
    first_hash: dict[Pair, str | None] = {}
    for c in commands:
        if c.idempotency_key is not None:
            first_hash.setdefault((c.user_id, c.idempotency_key), c.request_hash)
    pending = list(first_hash)
    for _ in range(CLAIM_ATTEMPTS):
        if not pending:
            return
        pending = _claim(batch, {pair: first_hash[pair] for pair in pending})
    for pair in pending:  # still vanishing: refused (CONFLICT), written nowhere
        batch.keys[pair] = BatchKey(claimed=False)


def _claim(batch: Batch, hashes: dict[Pair, str | None]) -> list[Pair]:
    """One claim of `hashes`' keys; the keys taken when claimed but gone when read (they
    expired in between), to be claimed again."""
    rows = [
        {"user_id": u, "key": k, "request_hash": h, "event_id": None, "created_at": batch.now}
        for (u, k), h in hashes.items()
    ]
    claim = (
        insert(batch.dialect, idempotency_keys)
        .on_conflict_do_nothing(index_elements=["user_id", "key"])
        .returning(idempotency_keys.c.user_id, idempotency_keys.c.key)
    )
    claimed = {(r.user_id, r.key) for r in batch.conn.execute(claim, rows)}
    for pair in claimed:
        batch.keys[pair] = BatchKey(claimed=True)
    taken = [pair for pair in hashes if pair not in claimed]
    found = _load_taken_keys(batch, taken) if taken else set()
    return [pair for pair in taken if pair not in found]


def _load_taken_keys(batch: Batch, taken: list[Pair]) -> set[Pair]:
    pair_col = sa.tuple_(idempotency_keys.c.user_id, idempotency_keys.c.key)
    owners: dict[int, list[BatchKey]] = {}
    found: set[Pair] = set()
    for chunk in chunks(taken):
        stmt = sa.select(idempotency_keys).where(pair_col.in_(chunk))
        for row in batch.conn.execute(stmt):
            pair = (row.user_id, row.key)
            key = batch.keys[pair] = BatchKey(claimed=False, request_hash=row.request_hash)
            found.add(pair)
            if row.event_id is not None:
                owners.setdefault(int(row.event_id), []).append(key)
    for chunk in chunks(list(owners)):
        stmt = (
            sa.select(score_events, users.c.display_name)
            .join(users, users.c.user_id == score_events.c.user_id)
            .where(score_events.c.id.in_(chunk))
        )
        for row in batch.conn.execute(stmt):
            for key in owners[int(row.id)]:
                key.owner = event_from_row(row)
    return found


def settle_keys(batch: Batch) -> None:
    """Point used keys at their events; free the keys claimed by refused commands."""
    used = [
        {"b_user": u, "b_key": k, "b_hash": key.request_hash, "b_event": key.owner.event_id}
        for (u, k), key in batch.keys.items()
        if key.claimed and isinstance(key.owner, NewEvent)
    ]
    unused = [pair for pair, key in batch.keys.items() if key.claimed and key.owner is None]
    t = idempotency_keys
    if used:
        stmt = (
            sa.update(t)
            .where(t.c.user_id == sa.bindparam("b_user"), t.c.key == sa.bindparam("b_key"))
            .values(event_id=sa.bindparam("b_event"), request_hash=sa.bindparam("b_hash"))
        )
        batch.conn.execute(stmt, used)
    for chunk in chunks(unused):
        batch.conn.execute(sa.delete(t).where(sa.tuple_(t.c.user_id, t.c.key).in_(chunk)))


class KeyRetention:
    """The retention method; `SqlStore` sets the attributes below."""

    _engines: Engines
    _guard: Guard

    @property
    def guard(self) -> Guard:
        return self._guard

    async def expire_idempotency_keys(
        self, before: datetime, batch: int = EXPIRE_BATCH, pause: float = EXPIRE_PAUSE
    ) -> int:
        """Delete the idempotency keys created before `before`, oldest first, `batch` per
        transaction and `pause` seconds between transactions; how many were deleted."""
        if batch < 1:
            raise ValueError("batch must be at least 1")
        deleted = 0
        while True:
            count = await self._expire_batch(before, batch)
            deleted += count
            if count < batch:
                return deleted
            await asyncio.sleep(pause)

    @unit_of_work
    async def _expire_batch(self, before: datetime, batch: int) -> int:
        t = idempotency_keys
        chosen = (
            sa.select(t.c.user_id, t.c.key)
            .where(t.c.created_at < before)
            .order_by(t.c.created_at)
            .limit(batch)
        )
        if self._engines.dialect == "postgresql":  # a key a batch holds waits for next time
            chosen = chosen.with_for_update(skip_locked=True)
        pair = sa.tuple_(t.c.user_id, t.c.key)
        async with self._engines.write.begin() as conn:
            result = await conn.execute(sa.delete(t).where(pair.in_(chosen)))
            return int(result.rowcount or 0)
