"""`record_events`: a batch of score commands applied in one transaction (group commit).

Set-based, so a batch costs a handful of statements whatever its size:
1. lock the batch's users, then read their scores (two SELECTs, see `_lock_users`);
2. claim the batch's idempotency keys (one multi-row `INSERT .. ON CONFLICT DO NOTHING
   RETURNING`); read the keys that were already taken and their events (two SELECTs;
   `store/sql_keys.py`);
3. read the board rows the batch's events count on (one SELECT, see `store/sql_boards.py`);
4. decide every command in order, in Python, from the locked scores and board rows
   (completing actions, the rare case, costs one UPDATE each);
5. write the events (multi-row INSERT), one score row per user (multi-row upsert), the
   changed board rows (one multi-row upsert), and the claimed keys' event ids (one
   executemany UPDATE).

Each event records the region its user has in the locking SELECT and its own time (`at_us`):
the board rows can be rebuilt exactly from the log (`store/sql_rebuild.py`).

Locking: the users' rows are locked in user id order (`FOR NO KEY UPDATE` on PostgreSQL;
SQLite's `BEGIN IMMEDIATE` already holds the database's write lock). That one lock serializes
every batch that touches a user, whatever process it comes from, so batches never deadlock on
rows taken in different orders, a user cannot be deleted under a batch, and the scores read with
the lock stay true until commit, which is what lets step 3 compute new scores in Python. `FOR
NO KEY UPDATE` rather than `FOR SHARE`: shared locks would let two batches interleave their
writes and deadlock. The keys' primary key remains the final arbiter of idempotency: the claim
waits for any concurrent claimer and then sees its committed row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from scoreboard.domain.boards import BoardCatalogue, View
from scoreboard.domain.ranking import SCORE_MAX, SCORE_MIN, Standing
from scoreboard.store.base import ScoreCommand, ScoreOutcome
from scoreboard.store.engine import insert
from scoreboard.store.schema import actions, score_events, user_scores, users
from scoreboard.store.sql_batch import (
    BANNED,
    CONFLICT,
    USER_GONE,
    Batch,
    BatchKey,
    BatchUser,
    NewEvent,
    Plan,
    chunks,
    from_us,
    outcome,
    replay,
)
from scoreboard.store.sql_boards import BoardFolds, row_key
from scoreboard.store.sql_keys import claim_keys, settle_keys


def record_batch(
    conn: sa.Connection,
    commands: Sequence[ScoreCommand],
    now: datetime,
    catalogue: BoardCatalogue,
) -> list[ScoreOutcome]:
    """Apply `commands` in order inside the caller's (write) transaction.

    Synchronous, so that a whole batch is one call into the driver's world: on SQLite one hop
    to the writer thread (`store.engine.SqliteWriter`), on PostgreSQL one greenlet
    (`AsyncConnection.run_sync`), instead of a hop or a greenlet per statement."""
    batch = Batch(conn, now, BoardFolds(catalogue))
    batch.users = _lock_users(batch, sorted({c.user_id for c in commands}))
    claim_keys(batch, [c for c in commands if c.user_id in batch.users])
    views = _load_boards(batch, commands)
    plans = [_plan(batch, command, seen) for command, seen in zip(commands, views, strict=True)]
    new_events = [plan for plan in plans if isinstance(plan, NewEvent)]
    if new_events:
        _insert_events(batch, new_events)
        _save_scores(batch)
        batch.boards.save(conn)
    settle_keys(batch)
    return [outcome(plan, now) for plan in plans]


def _lock_users(batch: Batch, user_ids: list[str]) -> dict[str, BatchUser]:
    """Lock the active users of the batch, then read their scores.

    Two statements on purpose: on PostgreSQL a statement that waited for a row lock sees the
    locked row's new version but the OTHER tables of its join as of its start, so scores read
    in the locking statement could be stale. The second statement starts after the lock is
    held; every writer of `user_scores` holds that lock, so what it reads stays true.
    """
    found: dict[str, BatchUser] = {}
    for chunk in chunks(user_ids):
        stmt = (
            sa.select(users.c.user_id, users.c.display_name, users.c.region, users.c.status)
            .where(users.c.user_id.in_(chunk), users.c.deleted_at.is_(None))
            .order_by(users.c.user_id)
        )
        if batch.dialect == "postgresql":
            stmt = stmt.with_for_update(key_share=True)  # FOR NO KEY UPDATE
        for row in batch.conn.execute(stmt):
            if row.status == "banned":
                batch.banned.add(row.user_id)
                continue
            hidden = row.status == "quarantined"
            found[row.user_id] = BatchUser(row.display_name, 0, 0, 0, row.region, hidden=hidden)
    for chunk in chunks(list(found)):
        scores = sa.select(user_scores).where(user_scores.c.user_id.in_(chunk))
        for row in batch.conn.execute(scores):
            user = found[row.user_id]
            user.score, user.reached_at_us = int(row.score), int(row.reached_at_us)
            user.version = int(row.version)
    return found


def _load_boards(batch: Batch, commands: Sequence[ScoreCommand]) -> list[list[View]]:
    """The views each command would count on ([] for a user who is gone), after loading the
    rows of those views in one read."""
    views: list[list[View]] = []
    for c in commands:
        user = batch.users.get(c.user_id)
        seen = (
            [] if user is None else batch.boards.counted(c.action_type, user.region, batch.at_us(c))
        )
        views.append(seen)
    wanted = (
        row_key(view, c.user_id)
        for c, seen in zip(commands, views, strict=True)
        for view in seen
        if not batch.boards.is_total(view)
    )
    batch.boards.load(batch.conn, wanted)
    return views


def _plan(batch: Batch, c: ScoreCommand, views: list[View]) -> Plan:
    user = batch.users.get(c.user_id)
    if user is None:
        return BANNED if c.user_id in batch.banned else USER_GONE
    key: BatchKey | None = None
    if c.idempotency_key is not None:
        key = batch.keys[(c.user_id, c.idempotency_key)]
        if not key.claimed or key.owner is not None:  # the key already answered a request
            return replay(key, c)
    new_score = user.score + c.points
    if not SCORE_MIN <= new_score <= SCORE_MAX:
        return CONFLICT
    at_us = batch.at_us(c)
    effect = batch.boards.fold(views, c.user_id, c.points, at_us)
    if effect is None:  # a board's row would leave the 64-bit range
        return CONFLICT
    if c.action_id is not None and not _complete_action(batch, c, at_us):
        return CONFLICT
    if c.points or not user.version:  # zero points reach no new score: its time stays
        user.reached_at_us = at_us
    user.score, user.version, user.touched = new_score, user.version + 1, True
    total = Standing(c.user_id, user.display_name, new_score, user.reached_at_us)
    boards = batch.boards.apply(effect, c.user_id, user.display_name, (total, user.version))
    event = NewEvent(
        c,
        user.display_name,
        new_score,
        user.reached_at_us,
        user.version,
        at_us,
        user.region,
        boards,
        hidden=user.hidden,
    )
    if key is not None:
        key.request_hash, key.owner = c.request_hash, event
    return event


def _complete_action(batch: Batch, c: ScoreCommand, at_us: int) -> bool:
    """Complete the command's action if it is the user's and still open."""
    result = batch.conn.execute(
        sa.update(actions)
        .where(
            actions.c.action_id == c.action_id,
            actions.c.user_id == c.user_id,
            actions.c.status == "started",
        )
        .values(
            status="completed",
            ended_at=from_us(at_us),
            points=c.points,
        )
        .returning(actions.c.action_id)
    )
    return result.first() is not None


def _insert_events(batch: Batch, events: list[NewEvent]) -> None:
    rows = [
        {
            "user_id": e.command.user_id,
            "action_type": e.command.action_type,
            "points": e.command.points,
            "new_score": e.new_score,
            "reached_at_us": e.reached_at_us,
            "version": e.version,
            "idempotency_key": e.command.idempotency_key,
            "request_hash": e.command.request_hash,
            "action_id": e.command.action_id,
            "created_at": batch.now,
            "region": e.region,
            "at_us": e.at_us,
            "source": e.command.source,
        }
        for e in events
    ]
    # (user_id, version) names an event uniquely: each event moves its user's version on.
    stmt = sa.insert(score_events).returning(
        score_events.c.id, score_events.c.user_id, score_events.c.version
    )
    ids = {(r.user_id, int(r.version)): int(r.id) for r in batch.conn.execute(stmt, rows)}
    for e in events:
        e.event_id = ids[(e.command.user_id, e.version)]


def _save_scores(batch: Batch) -> None:
    """One upsert row per user, with the final values (the lock makes them safe to set)."""
    rows = [
        {
            "user_id": user_id,
            "score": u.score,
            "reached_at_us": u.reached_at_us,
            "version": u.version,
            "updated_at": batch.now,
        }
        for user_id, u in batch.users.items()
        if u.touched
    ]
    stmt = insert(batch.dialect, user_scores)
    stmt = stmt.on_conflict_do_update(
        index_elements=["user_id"],
        set_={
            name: stmt.excluded[name]
            for name in ("score", "reached_at_us", "version", "updated_at")
        },
    )
    batch.conn.execute(stmt, rows)
