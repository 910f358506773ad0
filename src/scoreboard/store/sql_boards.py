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
from datetime import datetime

import sqlalchemy as sa

from scoreboard.domain.boards import BoardCatalogue, View, fold
from scoreboard.domain.ranking import SCORE_MAX, SCORE_MIN, Standing
from scoreboard.store.base import BoardStanding
from scoreboard.store.engine import insert
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
        """Read (and on PostgreSQL lock) the existing rows among `wanted`."""
        keys = sorted(set(wanted))
        t = board_scores
        columns = sa.tuple_(t.c.board_id, t.c.period_id, t.c.region, t.c.user_id)
        for chunk in chunks(keys):
            stmt = sa.select(
                t.c.board_id,
                t.c.period_id,
                t.c.region,
                t.c.user_id,
                t.c.score,
                t.c.reached_at_us,
                t.c.version,
            ).where(columns.in_(chunk))
            if conn.dialect.name == "postgresql":
                stmt = stmt.with_for_update()
            for r in conn.execute(stmt):
                key = (r.board_id, r.period_id, r.region, r.user_id)
                self.rows[key] = (int(r.score), int(r.reached_at_us), int(r.version))

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

    def save(self, conn: sa.Connection, now: datetime) -> None:
        """ONE multi-row upsert of the rows the batch changed, with their final values."""
        if not self.touched:
            return
        rows = [
            {
                "board_id": key[0],
                "period_id": key[1],
                "region": key[2],
                "user_id": key[3],
                "score": held[0],
                "reached_at_us": held[1],
                "version": held[2],
                "updated_at": now,
            }
            for key in sorted(self.touched)
            for held in (self.rows[key],)
        ]
        stmt = insert(conn.dialect.name, board_scores)
        stmt = stmt.on_conflict_do_update(
            index_elements=["board_id", "period_id", "region", "user_id"],
            set_={
                name: stmt.excluded[name]
                for name in ("score", "reached_at_us", "version", "updated_at")
            },
        )
        conn.execute(stmt, rows)
