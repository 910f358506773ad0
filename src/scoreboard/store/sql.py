"""`SqlStore`: the `Store` protocol over SQLAlchemy Core, for SQLite and PostgreSQL.

Beyond the protocol's contract (see `store/base.py`):
- Every public method answers within `timeout` seconds, even when the server stops answering
  (work still running then is cancelled and unwinds in the background), and maps every
  database failure to `ServiceUnavailable` (see `store/guard.py`); `UsernameTaken` and
  `NotFound` are the only other domain errors raised.
- `open` does not connect and does not migrate: run `store.migrate.run_migrations(url)` first.
- Writes and reads use separate engines on SQLite (see `store/engine.py`), and score batches
  their own writer thread; one engine on PostgreSQL.
- Multi-statement reads (`standings_page`, `iter_standings`, their views' forms) read one
  consistent snapshot (`store/sql_views.py`).
- `iter_standings` (a rebuild's walk of the whole board) is not a request and is not bound by
  `timeout`: it fails only when the database delivers no page for `walk_stall` seconds
  (`WALK_STALL_SECONDS`; `timeout` if longer), however big the board and however long the
  whole walk takes. The same for `iter_view_standings`.
- Boards: the store writes and reads by the catalogue it was opened with; every batch keeps
  every view its events count on (`store/sql_boards.py`). `rebuild_board` and
  `backfill_boards` (`store/sql_rebuild.py`) are bounded by `rebuild_timeout` as a whole and,
  on PostgreSQL, each statement by `walk_stall`; on PostgreSQL they hold live batches back
  while they run (a batch waits for at most `timeout`).

The action lifecycle of the compatibility routes (`start_action`, `get_action`,
`cancel_action`, `mark_suspicious`): an action is completed by `record_events` with
`ScoreCommand.action_id` set, atomically with its points.

The webhook outbox (`Outbox`, `store/sql_outbox.py`): claims lease rows, so no transaction
stays open while a webhook is sent.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scoreboard.domain.boards import Board, BoardCatalogue
from scoreboard.domain.errors import ServiceUnavailable
from scoreboard.domain.times import utcnow
from scoreboard.store import sql_actions, sql_rebuild, sql_users
from scoreboard.store.base import ActionRecord, ScoreCommand, ScoreOutcome, Store, UserRecord
from scoreboard.store.engine import Engines, create_engines
from scoreboard.store.guard import Guard, unit_of_work
from scoreboard.store.schema import score_events, users
from scoreboard.store.sql_admin import Admin
from scoreboard.store.sql_event_log import EventLog
from scoreboard.store.sql_flags import Flags
from scoreboard.store.sql_friends import Friends
from scoreboard.store.sql_keys import KeyRetention
from scoreboard.store.sql_moderation import Moderation
from scoreboard.store.sql_outbox import Outbox
from scoreboard.store.sql_partitions import Partitions, PartitionUpkeep
from scoreboard.store.sql_prune import Pruning
from scoreboard.store.sql_scores import record_batch
from scoreboard.store.sql_sessions import Sessions
from scoreboard.store.sql_views import RankedReads

log = logging.getLogger(__name__)

# A rebuild's walk fails when no page arrives for this long: a stall (a hung server, a lost
# connection), not a slow start. The first page of a big board waits for PostgreSQL's sort
# (seconds at 1M users on a loaded machine), beyond a request's bound.
WALK_STALL_SECONDS = 30.0
# A board rebuild (all its periods, from the whole log) fails when it takes longer than this.
REBUILD_SECONDS = 600.0


class SqlStore(
    RankedReads,
    Friends,
    Pruning,
    PartitionUpkeep,
    KeyRetention,
    Moderation,
    Outbox,
    Admin,
    Sessions,
    EventLog,
    Flags,
):
    """Durable users, scores, score events (append-only), idempotency records, actions and
    the rows of every board (the reads: `RankedReads`); friends lists, retention of past
    periods, the events' partitions, retention of idempotency keys, moderation, the webhook
    outbox, API keys, roles and the admin audit log, refresh tokens, the event-log
    query, the anomaly rules' tables (one mixin each).
    """

    def __init__(
        self,
        engines: Engines,
        *,
        timeout: float,
        walk_stall: float = WALK_STALL_SECONDS,
        boards: BoardCatalogue | None = None,
        rebuild_timeout: float = REBUILD_SECONDS,
    ) -> None:
        self._engines = engines
        self._guard = Guard(timeout)
        self._walk_guard = Guard(max(timeout, walk_stall))  # see the module doc
        self._rebuild_guard = Guard(max(timeout, rebuild_timeout))
        self._boards = boards if boards is not None else BoardCatalogue.default()
        self._partitions = Partitions(engines)

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        timeout: float = 2.0,  # noqa: ASYNC109
        walk_stall: float = WALK_STALL_SECONDS,
        boards: BoardCatalogue | None = None,
        rebuild_timeout: float = REBUILD_SECONDS,
    ) -> SqlStore:
        """A store for `url` (sqlite[+aiosqlite]:// or postgresql[+asyncpg]://) keeping the
        boards of `boards` (None: `BoardCatalogue.default()`). No I/O yet."""
        return cls(
            create_engines(url, timeout, walk_stall),
            timeout=timeout,
            walk_stall=walk_stall,
            boards=boards,
            rebuild_timeout=rebuild_timeout,
        )

    @property
    def dialect(self) -> str:
        """ "sqlite" or "postgresql"."""
        return self._engines.dialect

    def _write(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        return self._engines.write.begin()

    # -- users ---------------------------------------------------------------------------------
    @unit_of_work
    async def create_user(
        self,
        username: str,
        password_hash: str | None,
        display_name: str,
        *,
        avatar_url: str | None = None,
        region: str | None = None,
        external_subject: str | None = None,
    ) -> UserRecord:
        values = {
            "username": username,
            "password_hash": password_hash,
            "display_name": display_name,
            "avatar_url": avatar_url,
            "region": region,
            "external_subject": external_subject,
        }
        async with self._write() as conn:
            return await sql_users.create_user(conn, values, utcnow())

    @unit_of_work
    async def get_user(self, user_id: str) -> UserRecord | None:
        async with self._read() as conn:
            return await sql_users.find_user(conn, users.c.user_id == user_id)

    @unit_of_work
    async def get_users(self, user_ids: Sequence[str]) -> dict[str, UserRecord]:
        if not user_ids:
            return {}
        async with self._read() as conn:
            return await sql_users.find_users(conn, users.c.user_id.in_(list(user_ids)))

    @unit_of_work
    async def get_user_by_username(self, username: str) -> UserRecord | None:
        async with self._read() as conn:
            return await sql_users.find_user(conn, users.c.username == username)

    @unit_of_work
    async def get_user_by_subject(self, external_subject: str) -> UserRecord | None:
        async with self._read() as conn:
            return await sql_users.find_user(conn, users.c.external_subject == external_subject)

    @unit_of_work
    async def update_profile(
        self,
        user_id: str,
        *,
        display_name: str | None = None,
        avatar_url: str | None = None,
        region: str | None = None,
    ) -> UserRecord | None:
        given = {"display_name": display_name, "avatar_url": avatar_url, "region": region}
        changes = {name: value for name, value in given.items() if value is not None}
        async with self._write() as conn:
            return await sql_users.update_profile(conn, user_id, changes)

    @unit_of_work
    async def delete_user(self, user_id: str) -> bool:
        async with self._write() as conn:
            return await sql_users.delete_user(conn, user_id, utcnow())

    # -- scores --------------------------------------------------------------------------------
    @unit_of_work
    async def record_events(self, commands: Sequence[ScoreCommand]) -> list[ScoreOutcome]:
        """Apply the commands in order, in one transaction; one outcome per command.

        Per command: USER_GONE if the user is missing or deleted; with an idempotency key
        already used by that user, REPLAYED (same `request_hash`: the original event, whose
        `new_score` is the score right after it) or CONFLICT (another hash). CONFLICT also when
        `action_id` names an action that is not this user's open ('started') action, or when
        the new score would leave the 64-bit range; such a command writes nothing (its key
        stays free). Otherwise RECORDED. `at_us` 0 means "now" (the commit's clock).
        """
        if not commands:
            return []
        now = utcnow()
        writer = self._engines.batch_writer
        if writer is not None:  # SQLite: the whole batch in one hop to its thread
            return await writer.run(record_batch, commands, now, self._boards)
        await self._partitions.ready(now)  # a set lookup, but in a month without upkeep
        async with self._write() as conn:  # PostgreSQL: the whole batch in one greenlet
            return await conn.run_sync(record_batch, commands, now, self._boards)

    # -- boards rebuilt from the log (reads: `RankedReads`) ------------------------------------
    async def rebuild_board(self, board_id: str) -> int:
        """Recompute the board from the log (see `store/sql_rebuild.py`); the rows written.
        0 for a total board: it is `user_scores`."""
        board = self._boards.get(board_id)
        if board.is_total:
            return 0
        written = await self._rebuild_guard.run(self._rebuild(board, only_if_stale=False))
        assert written is not None
        return written

    async def backfill_boards(self) -> list[str]:
        """Rebuild every board whose recorded fingerprint is missing or another; forget the
        rows of boards no longer in the catalogue (`sql_rebuild.forget_removed`)."""
        return await self._rebuild_guard.run(self._backfill())

    async def _backfill(self) -> list[str]:
        async with self._write() as conn:
            recorded = await conn.run_sync(sql_rebuild.recorded)
            if set(recorded) - {b.board_id for b in self._boards if not b.is_total}:
                await conn.run_sync(sql_rebuild.forget_removed, self._boards)
        rebuilt = []
        for board in self._boards:
            if board.is_total or recorded.get(board.board_id) == board.fingerprint:
                continue
            if await self._rebuild(board, only_if_stale=True) is not None:
                rebuilt.append(board.board_id)
        return rebuilt

    async def _rebuild(self, board: Board, *, only_if_stale: bool) -> int | None:
        work, now = sql_rebuild.rebuild, utcnow()
        writer = self._engines.batch_writer
        if writer is not None:  # SQLite: the batch writer, whose write lock holds batches back
            return await writer.run(work, board, now, only_if_stale)
        assert self._engines.rebuild is not None
        async with self._engines.rebuild.begin() as conn:
            return await conn.run_sync(work, board, now, only_if_stale)

    # -- audit and health ----------------------------------------------------------------------
    @unit_of_work
    async def count_events(self) -> int:
        async with self._read() as conn:
            count = sa.select(sa.func.count()).select_from(score_events)
            return int((await conn.execute(count)).scalar_one())

    @unit_of_work
    async def sum_event_points(self) -> int:
        async with self._read() as conn:
            if self.dialect == "postgresql":  # SUM(bigint) is numeric there: no overflow
                total = sa.select(sa.func.coalesce(sa.func.sum(score_events.c.points), 0))
                return int((await conn.execute(total)).scalar_one())
            # SQLite's SUM fails beyond 64 bits; one user's sum is their score, which fits.
            per_user = sa.select(sa.func.sum(score_events.c.points)).group_by(
                score_events.c.user_id
            )
            return sum(int(row[0]) for row in await conn.execute(per_user))

    @unit_of_work
    async def ping(self) -> None:
        async with self._engines.read.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def close(self) -> None:
        """Dispose of the engines, within `timeout`; never raises."""
        try:
            await self._guard.run(self._close())
        except ServiceUnavailable:
            log.warning("closing the database connections failed", exc_info=True)

    async def _close(self) -> None:
        await self._guard.drain()
        await self._walk_guard.drain()
        await self._rebuild_guard.drain()
        await self._engines.dispose()

    # -- actions -----------------------------------------------------------------------------
    @unit_of_work
    async def start_action(
        self,
        user_id: str,
        action_type: str,
        metadata: Mapping[str, Any] | None = None,
        at: datetime | None = None,
        *,
        supersede: bool = False,
    ) -> ActionRecord:
        """Start an action for an active user (`NotFound` otherwise); status 'started'."""
        values = (user_id, action_type, dict(metadata or {}), at or utcnow())
        async with self._write() as conn:
            return await sql_actions.start_action(conn, *values, supersede=supersede)

    @unit_of_work
    async def get_action(self, action_id: str) -> ActionRecord | None:
        async with self._read() as conn:
            return await sql_actions.get_action(conn, action_id)

    @unit_of_work
    async def cancel_action(
        self, action_id: str, at: datetime | None = None
    ) -> ActionRecord | None:
        """Cancel a 'started' action; None when it does not exist or is no longer open."""
        async with self._write() as conn:
            return await sql_actions.cancel_action(conn, action_id, at or utcnow())

    @unit_of_work
    async def mark_suspicious(self, action_id: str) -> bool:
        """Flag an action for review (e.g. completed too fast); False if there is none."""
        async with self._write() as conn:
            return await sql_actions.mark_suspicious(conn, action_id)


if TYPE_CHECKING:

    def _implements_store(store: SqlStore) -> Store:  # mypy checks SqlStore against Store
        return store
