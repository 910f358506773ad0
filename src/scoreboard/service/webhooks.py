"""Webhooks, the service's side (API.md section 6, docs/WEBHOOKS.md): what is enqueued, when,
and the delivery log. Sending is `service.outbox`'s.

- `period.closed` is caused by time. Periods are a function of the clock (`domain.boards`),
  so a period's end is noticed, not scheduled: `PeriodCloser.check` takes the previous period
  of every windowed board as of `settle_seconds` ago and enqueues it with the dedupe key
  `period.closed:<board>:<period id>`, its final top 10 read from SQL. Every process checks
  at start-up, at each board's next reset (plus `settle_seconds`) and at least every second;
  the outbox's unique key makes that exactly one webhook per board and period, whatever the
  number of processes and restarts, and a period that ended while no process ran is sent at
  the next start. Only the previous period is checked: periods that ended during a longer
  outage are not sent (decision: a receiver gets the last one, not a backlog of stale ones).
- `settle_seconds`: events dated before a period's end may still be committing just after
  it (a write is committed or refused within twice the database timeout), so the top 10 is
  read only once they are in.
- `user.flagged` / `user.banned`: moderation enqueues them inside its own transaction
  (`store.sql_outbox.enqueue`); `WebhookService.enqueue` is the standalone form.
- Without `SCOREBOARD_WEBHOOK_URL` nothing is sent and no `period.closed` is enqueued.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from scoreboard.aio import stop_task
from scoreboard.config import Settings
from scoreboard.domain.boards import Board, BoardCatalogue, View, to_us
from scoreboard.domain.errors import ValidationFailed
from scoreboard.service.outbox import Backoff, OutboxWorker
from scoreboard.service.targets import Clock
from scoreboard.store.base import Store
from scoreboard.store.outbox import DeliveryRecord

log = logging.getLogger(__name__)

PERIOD_CLOSED = "period.closed"
USER_FLAGGED = "user.flagged"
USER_BANNED = "user.banned"
TOP = 10
CURSOR = re.compile(r"[0-9]{1,18}")


def period_closed_key(board_id: str, period_id: str) -> str:
    return f"{PERIOD_CLOSED}:{board_id}:{period_id}"


class PeriodCloser:
    """Enqueues `period.closed` once per windowed board and period (see the module doc)."""

    def __init__(
        self,
        store: Store,
        catalogue: BoardCatalogue,
        clock: Clock,
        *,
        settle_seconds: float,
        on_enqueued: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._boards = [b for b in catalogue if b.window != "all_time"]
        self._clock = clock
        self._settle_us = int(settle_seconds * 1e6)
        self._on_enqueued = on_enqueued
        self._done: set[str] = set()  # keys this process already enqueued or found taken
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="webhook-periods")

    async def close(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def check(self) -> list[str]:
        """Enqueue the closed previous period of each windowed board not enqueued yet; the
        dedupe keys this call wrote (another process may have written the others)."""
        settled = self._clock() - self._settle_us
        written = []
        for board in self._boards:
            period = board.resolve("previous", settled)
            key = period_closed_key(board.board_id, period.id)
            if key in self._done:
                continue
            data = {
                "scope": board.board_id,
                "period": period.as_dict(),
                **await self._final_top(board, period.id),
            }
            if await self._store.enqueue_webhook(PERIOD_CLOSED, data, dedupe_key=key):
                written.append(key)
            self._done.add(key)
        if written:
            log.info("webhooks: enqueued %s", written)
            self._on_enqueued()
        return written

    async def _final_top(self, board: Board, period_id: str) -> dict[str, Any]:
        if board.partition is not None:  # a top per region: the receiver reads the ones it wants
            return {"partition": board.partition, "top": []}
        standings, _ = await self._store.view_page(View(board.board_id, period_id), TOP, 0)
        top = [
            {"rank": i, "user_id": s.user_id, "display_name": s.display_name, "score": s.score}
            for i, s in enumerate(standings, start=1)
        ]
        return {"top": top}

    async def _watch(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:  # ServiceUnavailable included: the next check retries
                log.warning("webhooks: period check failed; retrying", exc_info=True)
            now = self._clock()
            resets = [b.next_reset_at(now) for b in self._boards]
            due = [to_us(r) + self._settle_us - now for r in resets if r is not None]
            await asyncio.sleep(min([1.0, *(max(0.0, d / 1e6) for d in due)]))


@dataclass(frozen=True, slots=True)
class DeliveryPage:
    items: list[DeliveryRecord]
    next_cursor: str | None


class WebhookService:
    """The webhooks of one app instance: its period closer and delivery worker (both only
    when a URL is configured), standalone enqueues, and the delivery log."""

    def __init__(
        self,
        store: Store,
        *,
        closer: PeriodCloser | None = None,
        worker: OutboxWorker | None = None,
    ) -> None:
        self._store = store
        self.closer = closer
        self.worker = worker

    @classmethod
    def create(
        cls,
        store: Store,
        catalogue: BoardCatalogue,
        clock: Clock,
        *,
        url: str,
        secret: str,
        settle_seconds: float,
        on_outcome: Callable[[str], None],
        backoff: Backoff | None = None,
    ) -> WebhookService:
        """Disabled (nothing enqueued by time, nothing sent) when `url` is empty."""
        if not url:
            return cls(store)
        worker = OutboxWorker(store, url, secret, backoff=backoff, on_outcome=on_outcome)
        closer = PeriodCloser(
            store, catalogue, clock, settle_seconds=settle_seconds, on_enqueued=worker.wake
        )
        return cls(store, closer=closer, worker=worker)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        store: Store,
        catalogue: BoardCatalogue,
        clock: Clock,
        on_outcome: Callable[[str], None],
    ) -> WebhookService:
        return cls.create(
            store,
            catalogue,
            clock,
            url=settings.webhook_url,
            secret=settings.webhook_secret,
            settle_seconds=2 * settings.db_timeout_seconds,  # see the module doc
            on_outcome=on_outcome,
        )

    @property
    def enabled(self) -> bool:
        return self.worker is not None

    def start(self) -> None:
        if self.worker is not None:
            self.worker.start()
        if self.closer is not None:
            self.closer.start()

    async def close(self) -> None:
        if self.closer is not None:
            await self.closer.close()
        if self.worker is not None:
            await self.worker.close()

    async def enqueue(
        self, type: str, data: Mapping[str, Any], dedupe_key: str | None = None
    ) -> str | None:
        """Enqueue a webhook in a transaction of its own (`Store.enqueue_webhook`) and send
        it soon; None when `dedupe_key` was taken. Disabled: nothing is written, None."""
        if self.worker is None:
            return None
        written = await self._store.enqueue_webhook(type, data, dedupe_key)
        self.worker.wake()
        return written

    async def deliveries(self, limit: int, cursor: str | None = None) -> DeliveryPage:
        """The delivery log, newest first; `cursor` is a page's `next_cursor`."""
        before = None
        if cursor is not None:
            if not CURSOR.fullmatch(cursor):
                raise ValidationFailed(
                    "cursor is not one this route gave.", details={"field": "cursor"}
                )
            before = int(cursor)
        items = await self._store.webhook_deliveries(limit + 1, before)
        more = len(items) > limit
        items = items[:limit]
        return DeliveryPage(items, str(items[-1].delivery_id) if more else None)
