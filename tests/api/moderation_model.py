"""The reference of tests/api/test_moderation_fold.py, written from the contract (API.md
sections 1, 5 and 6; docs/MODERATION.md), not from the service's code.

`read_log` reads the audit log (`score_events`) and the users' statuses back from the
database; `fold_log` folds that log into every board's rows: a voided event and its
compensation do not count; every other event (adjustments included) counts on every board
whose `actions` include its action type (absent = all), in the period of its own time in the
board's timezone, for the region stored on it; `sum` adds, `best` keeps the single highest
event (the earlier on equal points). `ranked` orders rows as every board must: score, then the
earlier time the score was reached, then user id.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from scoreboard.domain.boards import BoardCatalogue
from scoreboard.store.schema import score_events, users

# (board_id, period_id, region or "") -> {user_id: (score, reached_at_us)}
Rows = dict[str, tuple[int, int]]
Folded = dict[tuple[str, str, str], Rows]


@dataclass(frozen=True)
class Logged:
    """One line of the audit log, as the fold needs it."""

    event_id: int
    user_id: str
    action_type: str
    points: int
    at_us: int
    region: str | None
    voids: int | None

    def same_as(self, other: Logged) -> bool:
        """Equal as the contract defines the line: a compensation is (user, action, negated
        points, voids); its time and region are the service's to choose (they never count)."""
        if self.voids is not None or other.voids is not None:
            mine = (self.event_id, self.user_id, self.action_type, self.points, self.voids)
            theirs = (other.event_id, other.user_id, other.action_type, other.points, other.voids)
            return mine == theirs
        return self == other


async def read_log(database_url: str) -> tuple[list[Logged], dict[str, str]]:
    """The whole `score_events` log in id order, and every live user's status."""
    engine = create_async_engine(database_url)
    e = score_events
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                sa.select(e.c.id, e.c.user_id, e.c.action_type, e.c.points, e.c.at_us, e.c.region)
                .add_columns(e.c.voids)
                .order_by(e.c.id)
            )
            log = [
                Logged(
                    int(r.id),
                    str(r.user_id),
                    r.action_type,
                    int(r.points),
                    int(r.at_us),
                    r.region or None,  # "" is stored for a user who cleared their region
                    None if r.voids is None else int(r.voids),
                )
                for r in rows
            ]
            statuses = {
                str(r.user_id): r.status
                for r in await conn.execute(
                    sa.select(users.c.user_id, users.c.status).where(users.c.deleted_at.is_(None))
                )
            }
    finally:
        await engine.dispose()
    return log, statuses


def fold_log(catalogue: BoardCatalogue, log: list[Logged]) -> Folded:
    voided = {e.voids for e in log if e.voids is not None}
    held: Folded = {}
    for e in log:
        if e.voids is not None or e.event_id in voided:
            continue
        for board in catalogue:
            if board.actions is not None and e.action_type not in board.actions:
                continue
            if board.partition == "region" and e.region is None:
                continue
            part = (e.region or "") if board.partition == "region" else ""
            rows = held.setdefault((board.board_id, board.period_id_at(e.at_us), part), {})
            old = rows.get(e.user_id)
            if board.aggregate == "sum":
                rows[e.user_id] = (e.points + (old[0] if old else 0), e.at_us)
            elif old is None or e.points > old[0]:
                rows[e.user_id] = (e.points, e.at_us)
    return held


def ranked(rows: Rows) -> list[tuple[str, int]]:
    """(user, score) in rank order."""
    order = sorted(rows.items(), key=lambda r: (-r[1][0], r[1][1], r[0].encode()))
    return [(user, score) for user, (score, _) in order]


def public(rows: Rows, statuses: dict[str, str]) -> list[tuple[str, int]]:
    """The board as everyone sees it: only active users (banned and quarantined hidden)."""
    return ranked({u: row for u, row in rows.items() if statuses.get(u) == "active"})


def own_rank(rows: Rows, statuses: dict[str, str], user: str) -> int | None:
    """The rank a user's own /leaderboard/me shows: on the public board, or for a
    quarantined user as if visible (1 + the active users ahead); None without a row."""
    if user not in rows:
        return None
    visible = {u: row for u, row in rows.items() if statuses.get(u) == "active" or u == user}
    return [u for u, _ in ranked(visible)].index(user) + 1
