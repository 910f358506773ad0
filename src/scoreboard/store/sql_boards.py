"""The boards of a `record_events` batch: every view an event counts on, in the same
transaction, set-based (see `store/sql_scores.py` for the batch as a whole).

The total board (`Board.is_total`) is `user_scores`, which the batch keeps anyway: it has no
row here. Every other view an event counts on (`BoardCatalogue.counted`) has one
`board_scores` row per user. A batch reads the rows its events may change in ONE SELECT
(chunked), folds them in Python in command order (`domain.boards.fold`, the one rule), and
writes the changed ones in ONE multi-row upsert: per event, a row per board, not a round trip.

Locking: the batch already holds its users' locks (`sql_scores._lock_users`), and rows are
per user, so no other batch changes them before commit. On PostgreSQL the SELECT is
`FOR UPDATE` all the same: it takes `ROW SHARE` on the table, which conflicts with the
`EXCLUSIVE` lock of a rebuild (`store/sql_rebuild.py`), so a batch either commits before a
rebuild reads the log, or reads the rebuilt rows after it commits (its snapshot is taken once
the lock is granted).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from scoreboard.domain.boards import BoardCatalogue, View, fold
from scoreboard.domain.ranking import SCORE_MAX, SCORE_MIN, Standing
from scoreboard.store.base import BoardStanding
from scoreboard.store.schema import board_scores
from scoreboard.store.sql_batch import chunks

RowKey = tuple[str, str, str, str]  # board_id, period_id, region, user_id
Held = tuple[int, int, int]  # score, reached_at_us, version (0: no row yet)


def row_key(view: View, user_id: str) -> RowKey:
    return (view.board_id, view.period_id, view.region, user_id)


@dataclass(slots=True)
class Fold:
    """What one event does to the views it counts on: the new (score, reached_at_us) per
    non-total view it changes (None: unchanged). Computed first, applied once the command
    is sure to be recorded (`BoardFolds.apply`)."""

    views: list[View]
    changes: list[tuple[int, int] | None]


class BoardFolds:
    """The batch's board rows as the batch moves them."""

    def __init__(self, catalogue: BoardCatalogue) -> None:
        self.catalogue = catalogue
        self.rows: dict[RowKey, Held] = {}
        self.touched: set[RowKey] = set()
        self._totals = {b.board_id for b in catalogue if b.is_total}
        self._aggregates = {b.board_id: b.aggregate for b in catalogue}

    def counted(self, action_type: str, region: str | None, at_us: int) -> list[View]:
        """Every view an event counts on, the total's included, in catalogue order."""
        return self.catalogue.counted(action_type, region, at_us)

    def is_total(self, view: View) -> bool:
        return view.board_id in self._totals

    def load(self, conn: sa.Connection, wanted: Iterable[RowKey]) -> None:
        """Read (and on PostgreSQL lock) the existing rows among `wanted`.

        Selected by plain IN lists (the batch's few boards, periods and regions, and its users)
        rather than a tuple IN of every key: a fraction of the bind parameters, the same index
        range (the primary key's prefix), and the rare row outside `wanted` (a user's row of a
        pair of board and period the batch does not touch) is dropped here."""
        keys = set(wanted)
        if not keys:
            return
        t = board_scores
        boards = sorted({k[0] for k in keys})
        periods = sorted({k[1] for k in keys})
        regions = sorted({k[2] for k in keys})
        for chunk in chunks(sorted({k[3] for k in keys})):
            stmt = sa.select(
                t.c.board_id,
                t.c.period_id,
                t.c.region,
                t.c.user_id,
                t.c.score,
                t.c.reached_at_us,
                t.c.version,
            ).where(
                t.c.board_id.in_(boards),
                t.c.period_id.in_(periods),
                t.c.region.in_(regions),
                t.c.user_id.in_(chunk),
            )
            if conn.dialect.name == "postgresql":
                stmt = stmt.with_for_update()
            for r in conn.execute(stmt).all():
                key = (r[0], r[1], r[2], r[3])
                if key in keys:
                    self.rows[key] = (int(r[4]), int(r[5]), int(r[6]))

    def fold(self, views: list[View], user_id: str, points: int, at_us: int) -> Fold | None:
        """The event's effect on its non-total views; None when a row would leave the 64-bit
        range (the command is then refused and changes nothing)."""
        changes: list[tuple[int, int] | None] = []
        for view in views:
            if self.is_total(view):
                changes.append(None)
                continue
            held = self.rows.get(row_key(view, user_id))
            new = fold(
                self._aggregates[view.board_id],
                None if held is None else held[:2],
                points,
                at_us,
            )
            if new is not None and not SCORE_MIN <= new[0] <= SCORE_MAX:
                return None
            changes.append(new)
        return Fold(views, changes)

    def apply(
        self, effect: Fold, user_id: str, display_name: str, total: tuple[Standing, int]
    ) -> tuple[BoardStanding, ...]:
        """Apply a fold; where the event left the user on each view (the total: `total`)."""
        out: list[BoardStanding] = []
        for view, change in zip(effect.views, effect.changes, strict=True):
            if self.is_total(view):
                out.append(BoardStanding(view, total[0], total[1]))
                continue
            key = row_key(view, user_id)
            if change is not None:
                version = self.rows[key][2] + 1 if key in self.rows else 1
                self.rows[key] = (change[0], change[1], version)
                self.touched.add(key)
            score, reached, version = self.rows[key]
            out.append(
                BoardStanding(view, Standing(user_id, display_name, score, reached), version)
            )
        return tuple(out)

    def save(self, conn: sa.Connection) -> None:
        """ONE multi-row upsert of the rows the batch changed, with their final values.

        Sent as the driver's own statement (`exec_driver_sql`, one executemany): these rows are
        most of a batch's parameters, and SQLAlchemy's per-row processing of them cost more
        than the database's work. The statement is the same on SQLite and PostgreSQL; only
        the placeholders differ (`_placeholders`)."""
        if not self.touched:
            return
        rows = [(*key, *self.rows[key]) for key in sorted(self.touched)]
        conn.exec_driver_sql(_upsert(conn.dialect.paramstyle), rows)


COLUMNS = "board_id, period_id, region, user_id, score, reached_at_us, version"


def _placeholders(paramstyle: str, count: int) -> str:
    if paramstyle == "qmark":
        return ", ".join("?" * count)
    if paramstyle == "numeric_dollar":
        return ", ".join(f"${n}" for n in range(1, count + 1))
    if paramstyle in ("format", "pyformat"):
        return ", ".join(["%s"] * count)
    raise ValueError(f"unsupported DBAPI paramstyle {paramstyle!r}")


def insert_rows(paramstyle: str) -> str:
    """INSERT of whole board rows (`COLUMNS`), in the driver's own placeholders."""
    return f"INSERT INTO board_scores ({COLUMNS}) VALUES ({_placeholders(paramstyle, 7)})"


def _upsert(paramstyle: str) -> str:
    return (
        insert_rows(paramstyle)
        + " ON CONFLICT (board_id, period_id, region, user_id) DO UPDATE SET "
        "score = excluded.score, reached_at_us = excluded.reached_at_us, "
        "version = excluded.version"
    )
