"""`SqlStore`'s moderation: a user's status, and a user's row on one view with its version
(what putting a user back on a live index needs). A mixin like `store.sql_views.RankedReads`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scoreboard.domain.boards import BoardCatalogue, View
from scoreboard.domain.errors import AlreadyVoided
from scoreboard.domain.ranking import Standing
from scoreboard.store.base import AuditEntry, UserRecord, Voided
from scoreboard.store.engine import Engines
from scoreboard.store.guard import Guard, unit_of_work
from scoreboard.store.records import user_from_row
from scoreboard.store.schema import board_scores, user_scores, users
from scoreboard.store.sql_admin import append_audit
from scoreboard.store.sql_outbox import enqueue
from scoreboard.store.sql_partitions import Partitions
from scoreboard.store.sql_sessions import revoke_user_tokens
from scoreboard.store.sql_void import void

STATUSES = frozenset({"active", "banned", "quarantined"})


def _now() -> datetime:
    return datetime.now(UTC)


async def change_status(
    conn: AsyncConnection,
    user_id: str,
    status: str,
    audit: AuditEntry | None,
    webhook: tuple[str, Mapping[str, Any]] | None,
    *,
    expect: str | None = None,
) -> UserRecord | None:
    """`Moderation.set_status` inside the caller's transaction (a flag's resolution makes
    its status change in its own transaction: `store.sql_flags`)."""
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    where = [users.c.user_id == user_id, users.c.deleted_at.is_(None)]
    if expect is not None:
        where.append(users.c.status == expect)
    stmt = sa.update(users).where(*where).values(status=status).returning(*users.c)
    now = _now()
    row = (await conn.execute(stmt)).first()
    if row is None:
        return None
    if status == "banned":
        await conn.execute(revoke_user_tokens(user_id, now))
    if audit is not None:
        await append_audit(conn, audit, now)
    if webhook is not None:
        kind, data = webhook
        await conn.run_sync(lambda sync: enqueue(sync, kind, data, now=now))
    return user_from_row(row)


class Moderation:
    """The moderation methods; `SqlStore` sets the attributes below."""

    _engines: Engines
    _guard: Guard
    _boards: BoardCatalogue
    _partitions: Partitions

    @property
    def guard(self) -> Guard:
        return self._guard

    @unit_of_work
    async def set_status(
        self,
        user_id: str,
        status: str,
        *,
        audit: AuditEntry | None = None,
        webhook: tuple[str, Mapping[str, Any]] | None = None,
        expect: str | None = None,
    ) -> UserRecord | None:
        """Set an existing (not deleted) user's status; the user afterwards, None if none
        (or, `expect` given, if their status is another). `audit` and `webhook` (type, data)
        are written in the same transaction: the action, its audit line and its webhook are
        committed together or not at all. A ban also revokes every refresh token of the user
        in that transaction: it ends their sessions (an unban does not bring them back)."""
        async with self._engines.write.begin() as conn:
            return await change_status(conn, user_id, status, audit, webhook, expect=expect)

    @unit_of_work
    async def void_event(self, event_id: int, source: str) -> Voided:
        """Void an event: its compensation appended, the user's rows recomputed, in one
        transaction (`store.sql_void`)."""
        catalogue = self._boards
        now = _now()
        await self._partitions.ready(now)  # the compensation is an event of `now`
        async with self._engines.write.begin() as conn:
            try:
                return await conn.run_sync(
                    lambda sync: void(sync, catalogue, event_id, source, now)
                )
            except sa.exc.IntegrityError:  # a concurrent void of the same event won
                raise AlreadyVoided() from None

    @unit_of_work
    async def view_row(self, view: View, user_id: str, total: bool) -> tuple[Standing, int] | None:
        """The user's row on `view` (`total`: the total board's, `user_scores`) as a standing
        and its version, whatever the user's status; None when they have none."""
        t = user_scores if total else board_scores
        stmt = (
            sa.select(users.c.display_name, t.c.score, t.c.reached_at_us, t.c.version)
            .select_from(t.join(users, users.c.user_id == t.c.user_id))
            .where(t.c.user_id == user_id, users.c.deleted_at.is_(None))
        )
        if not total:
            stmt = stmt.where(
                t.c.board_id == view.board_id,
                t.c.period_id == view.period_id,
                t.c.region == view.region,
            )
        async with self._engines.read.begin() as conn:
            row = (await conn.execute(stmt)).first()
        if row is None:
            return None
        standing = Standing(user_id, row.display_name, int(row.score), int(row.reached_at_us))
        return standing, int(row.version)
