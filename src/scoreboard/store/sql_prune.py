"""`SqlStore`'s retention of past periods: board rows of periods that ended long ago are
deleted in small batches, each its own short transaction, so pruning never holds a long lock
(`SCOREBOARD_PERIOD_RETENTION_DAYS`, docs/BOARDS.md "Retention").

Period ids of one window sort like the periods they name (`2026-12-01`, `2026-W49`,
`2026-12`: fixed width, most significant first), so "every period before X" is a range of the
rank-order index's prefix (board_id, period_id).
"""

from __future__ import annotations

import sqlalchemy as sa

from scoreboard.store.engine import Engines
from scoreboard.store.guard import Guard, unit_of_work
from scoreboard.store.schema import board_scores

PRUNE_BATCH = 1000


class Pruning:
    """The pruning method; `SqlStore` sets the attributes below."""

    _engines: Engines
    _guard: Guard

    @property
    def guard(self) -> Guard:
        return self._guard

    async def prune_periods(self, board_id: str, before: str, batch: int = PRUNE_BATCH) -> int:
        """Delete the rows of `board_id`'s periods whose id sorts before `before`, `batch`
        rows per transaction; returns how many were deleted."""
        deleted = 0
        while True:
            count = await self._prune_batch(board_id, before, batch)
            deleted += count
            if count < batch:
                return deleted

    @unit_of_work
    async def _prune_batch(self, board_id: str, before: str, batch: int) -> int:
        t = board_scores
        key = sa.tuple_(t.c.board_id, t.c.period_id, t.c.region, t.c.user_id)
        chosen = (
            sa.select(t.c.board_id, t.c.period_id, t.c.region, t.c.user_id)
            .where(t.c.board_id == board_id, t.c.period_id < before)
            .limit(batch)
        )
        async with self._engines.write.begin() as conn:
            result = await conn.execute(sa.delete(t).where(key.in_(chosen)))
            return int(result.rowcount or 0)
