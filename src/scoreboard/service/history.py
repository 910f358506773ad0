"""The event log's upkeep (docs/OPERATIONS.md, "History and retention"): at start-up and then
every hour, the partitions of the events for the current month and the months beyond it
(PostgreSQL; `Store.ensure_partitions`, 3 months ahead), and the deletion of idempotency keys older
than the retention (`SCOREBOARD_IDEMPOTENCY_RETENTION_DAYS`, 0: never; `Store.
expire_idempotency_keys`, in small batches).

Never in a write's way: one background task per process; a failed step is logged and tried
again an hour later (a write whose month has no partition yet creates it itself, so a failed
upkeep costs writes nothing). Several processes may run it at once: partition creation is
serialized by the database, and two processes deleting expired keys delete each key once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from scoreboard.aio import stop_task
from scoreboard.domain.times import utcnow
from scoreboard.store.base import Store

log = logging.getLogger(__name__)

EVERY_SECONDS = 3600.0
EXPIRE_BATCH = 1000  # idempotency keys per delete transaction
EXPIRE_PAUSE = 0.05  # seconds between two of them


class HistoryUpkeep:
    """Partitions ahead and idempotency retention, for one process."""

    def __init__(
        self,
        store: Store,
        *,
        retention_days: int = 0,
        every_seconds: float = EVERY_SECONDS,
        batch: int = EXPIRE_BATCH,
        pause: float = EXPIRE_PAUSE,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        """`retention_days`: idempotency keys older than this are deleted (0: kept forever).
        `now`: the wall clock, which dates events and keys (the store's `created_at`)."""
        if retention_days < 0:
            raise ValueError("retention_days must not be negative")
        self._store = store
        self.retention_days = retention_days
        self._retention = timedelta(days=retention_days) if retention_days else None
        self._every = every_seconds
        self._batch = batch
        self._pause = pause
        self._now = now
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Create the partitions ahead now (start-up waits for it; a failure is logged, not
        raised), then run every `every_seconds` in a task."""
        await self._partitions()
        self._task = asyncio.create_task(self._run(), name="history-upkeep")

    async def close(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def run_once(self) -> tuple[list[str], int]:
        """One step: the partitions created, and the keys deleted. Never raises."""
        created = await self._partitions()
        return created, await self._expire()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            await self.run_once()

    async def _partitions(self) -> list[str]:
        try:
            created = await self._store.ensure_partitions(now=self._now())
        except Exception as exc:
            log.warning("creating the event partitions ahead failed (retried in an hour): %r", exc)
            return []
        if created:
            log.info("event partitions created: %s", ", ".join(created))
        return created

    async def _expire(self) -> int:
        if self._retention is None:
            return 0
        before = self._now() - self._retention
        try:
            deleted = await self._store.expire_idempotency_keys(
                before, batch=self._batch, pause=self._pause
            )
        except Exception as exc:
            log.warning("idempotency retention failed (retried in an hour): %r", exc)
            return 0
        if deleted:
            log.info("deleted %d idempotency keys older than %s", deleted, before.isoformat())
        return deleted
