"""A board rebuilt from the event log: every period and region of one board that is not the
total, recomputed from `score_events` in one transaction.

The rows are the live ones exactly: each event counts at its own time (`score_events.at_us`)
in the region its user had when it was recorded (`score_events.region`), through the same
`domain.boards.fold`, with the same versions (+1 per change, 1 for a new row); events of
deleted users are left out, as deleting a user drops their rows. Events recorded before
migration 0002 without an `at_us` (zero-point events after a user's first) count at their
batch's time (`created_at`), the only time kept for them.

The log is streamed in (user, event id) order: rows are per user, so only one user's rows are
held at a time, and they are written in chunks; a million events never sit in a list.

Concurrency: on PostgreSQL the rebuild first takes `LOCK TABLE board_scores IN EXCLUSIVE
MODE`: readers go on, but batches wait (their `FOR UPDATE` read of board rows takes ROW
SHARE), so a batch either committed before the rebuild reads the log, or reads the rebuilt
rows after it (see `store/sql_boards.py`). The fingerprint check comes after the lock, so of
several processes backfilling at once one rebuilds a board and the others see its fingerprint
and skip. On SQLite the write lock (`BEGIN IMMEDIATE`) does both.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime

import sqlalchemy as sa

from scoreboard.domain.boards import Board, BoardCatalogue, fold
from scoreboard.store.engine import insert
from scoreboard.store.schema import board_defs, board_scores, score_events, users
from scoreboard.store.sql_batch import to_us
from scoreboard.store.sql_boards import insert_rows

FLUSH_ROWS = 1000  # rows per INSERT of rebuilt rows
FETCH_ROWS = 2000  # events per fetch from the log


def rebuild(conn: sa.Connection, board: Board, now: datetime, only_if_stale: bool) -> int | None:
    """Replace the board's rows by a fold of the log, inside the caller's write transaction,
    and record its fingerprint. The rows written; None when `only_if_stale` and the board's
    fingerprint was recorded already (by another process, while this one waited)."""
    if board.is_total:
        raise ValueError(f"board {board.board_id!r} is the total: it has no rows to rebuild")
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("LOCK TABLE board_scores IN EXCLUSIVE MODE"))
    if only_if_stale and recorded(conn).get(board.board_id) == board.fingerprint:
        return None
    conn.execute(sa.delete(board_scores).where(board_scores.c.board_id == board.board_id))
    written = 0
    pending: list[Row] = []
    for user_id, events in itertools.groupby(_events(conn, board), key=lambda e: e[0]):
        pending.extend(_rows(board, user_id, events, now))
        if len(pending) >= FLUSH_ROWS:
            written += _flush(conn, pending)
    written += _flush(conn, pending)
    record = insert(conn.dialect.name, board_defs).values(
        board_id=board.board_id, fingerprint=board.fingerprint, built_at=now
    )
    conn.execute(
        record.on_conflict_do_update(
            index_elements=["board_id"],
            set_={"fingerprint": board.fingerprint, "built_at": now},
        )
    )
    return written


def recorded(conn: sa.Connection) -> dict[str, str]:
    """The fingerprint recorded for each board that has one."""
    rows = conn.execute(sa.select(board_defs.c.board_id, board_defs.c.fingerprint))
    return {row.board_id: row.fingerprint for row in rows}


def forget_removed(conn: sa.Connection, catalogue: BoardCatalogue) -> list[str]:
    """Delete the rows and the recorded fingerprint of every board recorded but no longer in
    the catalogue (or now the total, which has no rows): if it comes back it is rebuilt,
    never served from rows that missed the events in between. The ids forgotten."""
    kept = {b.board_id for b in catalogue if not b.is_total}
    gone = sorted(set(recorded(conn)) - kept)
    for board_id in gone:
        conn.execute(sa.delete(board_scores).where(board_scores.c.board_id == board_id))
        conn.execute(sa.delete(board_defs).where(board_defs.c.board_id == board_id))
    return gone


Event = tuple[str, str, int, str | None, int]  # user_id, action_type, points, region, at_us
Row = tuple[str, str, str, str, int, int, int]  # board_scores, in `sql_boards.COLUMNS` order


def _events(conn: sa.Connection, board: Board) -> Iterator[Event]:
    """The events that may count on the board, of active users, by user then event id: a
    voided event and its compensation do not count (`store/sql_void.py`)."""
    e = score_events
    voided = sa.select(e.c.voids).where(e.c.voids.is_not(None))
    stmt = (
        sa.select(e.c.user_id, e.c.action_type, e.c.points, e.c.region, e.c.at_us, e.c.created_at)
        .select_from(e.join(users, users.c.user_id == e.c.user_id))
        .where(users.c.deleted_at.is_(None), e.c.voids.is_(None), e.c.id.not_in(voided))
        .order_by(e.c.user_id, e.c.id)
    )
    if board.actions is not None:
        stmt = stmt.where(e.c.action_type.in_(sorted(board.actions)))
    if board.partition is not None:
        stmt = stmt.where(e.c.region.is_not(None))
    # Options of this statement only: `Connection.execution_options` would set them for the
    # rebuild's writes too.
    result = conn.execute(stmt.execution_options(stream_results=True, yield_per=FETCH_ROWS))
    for row in result:
        at_us = row.at_us if row.at_us is not None else to_us(row.created_at)
        yield row.user_id, row.action_type, int(row.points), row.region, int(at_us)


def _rows(board: Board, user_id: str, events: Iterator[Event], now: datetime) -> list[Row]:
    """One user's rows on the board: the live fold, replayed."""
    held: dict[tuple[str, str], tuple[int, int, int]] = {}  # (period, region) → row
    for _, action_type, points, region, at_us in events:
        if not board.counts(action_type):
            continue
        view = board.view_at(at_us, region)
        if view is None:
            continue
        key = (view.period_id, view.region)
        row = held.get(key)
        new = fold(board.aggregate, None if row is None else row[:2], points, at_us)
        if new is not None:
            held[key] = (new[0], new[1], 1 if row is None else row[2] + 1)
    return [
        (board.board_id, period_id, region, user_id, score, reached, version)
        for (period_id, region), (score, reached, version) in held.items()
    ]


def _flush(conn: sa.Connection, pending: list[Row]) -> int:
    """Insert the rows as one driver-level executemany (as the batches' upsert does)."""
    if not pending:
        return 0
    conn.exec_driver_sql(insert_rows(conn.dialect.paramstyle), pending)
    count = len(pending)
    pending.clear()
    return count
