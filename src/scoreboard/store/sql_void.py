"""Voiding an event (API.md section 6): a compensating event is appended (`points` negated,
`voids` = the voided event's id, and a row in `event_voids`, whose primary key makes it the
only one) and the user's rows on every view the voided event counted on, and their total, are
recomputed, all in one transaction. Nothing of the log is updated or deleted.

The rule every board follows (live, here, and in `store/sql_rebuild.py`): a voided event and
its compensation do not count. For a `sum` board that equals adding the negated points; for a
`best` board it is the only exact answer (the best of the other events). The recomputed rows
take the next version, so a rank index drops any older update that arrives late. A row left
without any counting event is deleted (the user leaves that view, as if they never scored
there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from scoreboard.domain.boards import BoardCatalogue, View, fold, to_us
from scoreboard.domain.errors import AlreadyVoided, NotFound, ValidationFailed
from scoreboard.domain.ranking import Standing
from scoreboard.store.base import BoardStanding, EventRecord, Voided
from scoreboard.store.schema import board_scores, event_voids, score_events, user_scores, users


@dataclass(frozen=True, slots=True)
class _Event:
    event_id: int
    action_type: str
    points: int
    region: str | None
    at_us: int
    voids: int | None


def void(
    conn: sa.Connection, catalogue: BoardCatalogue, event_id: int, source: str, now: datetime
) -> Voided:
    """Void `event_id` inside the caller's write transaction (see the module docstring).
    `NotFound` for an unknown event or a deleted user's; `AlreadyVoided` when it was voided
    before; `ValidationFailed` for a compensating event (void the original, not the void)."""
    row = conn.execute(sa.select(score_events).where(score_events.c.id == event_id)).first()
    if row is None:
        raise NotFound("No such event.")
    if row.voids is not None:
        raise ValidationFailed("This event is a compensation; it cannot be voided itself.")
    user_id = str(row.user_id)
    lock = sa.select(users.c.display_name, users.c.status).where(
        users.c.user_id == user_id, users.c.deleted_at.is_(None)
    )
    if conn.dialect.name == "postgresql":
        lock = lock.with_for_update(key_share=True)  # as the batches: one lock per user
    owner = conn.execute(lock).first()
    if owner is None:
        raise NotFound("No such event.")  # its user is gone: nothing to recompute
    name = owner.display_name
    events = _events_of(conn, user_id)
    if any(e.voids == event_id for e in events):
        raise AlreadyVoided()
    voided = {e.voids for e in events if e.voids is not None} | {event_id}
    counting = [e for e in events if e.voids is None and e.event_id not in voided]
    original = next(e for e in events if e.event_id == event_id)
    views = catalogue.counted(original.action_type, original.region, original.at_us)
    boards: list[BoardStanding] = []
    left: list[View] = []
    total_row = conn.execute(sa.select(user_scores).where(user_scores.c.user_id == user_id)).first()
    total_version = int(total_row.version) + 1 if total_row is not None else 1
    total = _fold("sum", counting)
    for view in views:
        board = catalogue.get(view.board_id)
        if board.is_total:
            if total is None:
                left.append(view)
            else:
                standing = Standing(user_id, name, total[0], total[1])
                boards.append(BoardStanding(view, standing, total_version))
            continue
        mine = [e for e in counting if view in catalogue.counted(e.action_type, e.region, e.at_us)]
        folded = _fold(board.aggregate, mine)
        found = _set_row(conn, view, user_id, folded)
        if found is None:
            left.append(view)
        else:
            standing = Standing(user_id, name, folded[0], folded[1])  # type: ignore[index]
            boards.append(BoardStanding(view, standing, found))
    _set_total(conn, user_id, total, total_version, now)
    new_score, reached = total if total is not None else (0, original.at_us)
    inserted = conn.execute(
        sa.insert(score_events)
        .values(
            user_id=user_id,
            action_type=original.action_type,
            points=-original.points,
            new_score=new_score,
            reached_at_us=reached,
            version=total_version,
            created_at=now,
            region=original.region,
            at_us=original.at_us,
            voids=event_id,
            **_source(source),
        )
        .returning(score_events.c.id)
    ).scalar_one()
    # At most one void per event, whatever partition the compensations fall in: a concurrent
    # void of the same event that got past the check above fails here (IntegrityError).
    conn.execute(sa.insert(event_voids).values(event_id=event_id, void_id=inserted, created_at=now))
    record = EventRecord(
        int(inserted),
        user_id,
        name,
        original.action_type,
        -original.points,
        new_score,
        reached,
        total_version,
        now,
        original.region,
        tuple(boards),
        hidden=owner.status != "active",  # off the public boards: rows only
    )
    return Voided(record, tuple(boards), tuple(left))


def _source(source: str) -> dict[str, str]:
    """The event's `source` column, where the schema has one."""
    return {"source": source} if "source" in score_events.c else {}


def _events_of(conn: sa.Connection, user_id: str) -> list[_Event]:
    e = score_events
    stmt = (
        sa.select(e.c.id, e.c.action_type, e.c.points, e.c.region, e.c.at_us)
        .add_columns(e.c.created_at, e.c.voids)
        .where(e.c.user_id == user_id)
        .order_by(e.c.id)
    )
    return [
        _Event(
            int(r.id),
            r.action_type,
            int(r.points),
            r.region,
            int(r.at_us) if r.at_us is not None else to_us(r.created_at),
            None if r.voids is None else int(r.voids),
        )
        for r in conn.execute(stmt)
    ]


def _fold(aggregate: str, events: Sequence[_Event]) -> tuple[int, int] | None:
    held: tuple[int, int] | None = None
    for e in events:
        new = fold(aggregate, held, e.points, e.at_us)  # type: ignore[arg-type]
        if new is not None:
            held = new
    return held


def _set_row(
    conn: sa.Connection, view: View, user_id: str, folded: tuple[int, int] | None
) -> int | None:
    """Write the user's recomputed row on `view` (delete it when None); its version."""
    t = board_scores
    where = (
        t.c.board_id == view.board_id,
        t.c.period_id == view.period_id,
        t.c.region == view.region,
        t.c.user_id == user_id,
    )
    held = conn.execute(sa.select(t.c.version).where(*where)).scalar()
    if folded is None:
        conn.execute(sa.delete(t).where(*where))
        return None
    version = 1 if held is None else int(held) + 1
    if held is None:
        conn.execute(
            sa.insert(t).values(
                board_id=view.board_id,
                period_id=view.period_id,
                region=view.region,
                user_id=user_id,
                score=folded[0],
                reached_at_us=folded[1],
                version=version,
            )
        )
    else:
        conn.execute(
            sa.update(t)
            .where(*where)
            .values(score=folded[0], reached_at_us=folded[1], version=version)
        )
    return version


def _set_total(
    conn: sa.Connection,
    user_id: str,
    total: tuple[int, int] | None,
    version: int,
    now: datetime,
) -> None:
    t = user_scores
    if total is None:
        conn.execute(sa.delete(t).where(t.c.user_id == user_id))
        return
    values = {"score": total[0], "reached_at_us": total[1], "version": version, "updated_at": now}
    if conn.execute(sa.update(t).where(t.c.user_id == user_id).values(**values)).rowcount == 0:
        conn.execute(sa.insert(t).values(user_id=user_id, **values))
