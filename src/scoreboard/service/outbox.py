"""Webhook delivery from the durable outbox (API.md section 6, docs/WEBHOOKS.md).

Contract:
- At least once: a webhook is sent until a receiver answers 2xx, or until it has been tried
  for `Backoff.give_up_seconds` (24 h), then it is given up (failed, kept in the outbox). A
  process that dies mid-attempt leaves a lease that ends; the webhook is then sent again.
  Receivers dedupe by the payload's `id`, the same on every attempt.
- Never two senders of one webhook at once: rows are claimed under a lease longer than an
  attempt can take (`Store.claim_webhooks`).
- Signed: `Scoreboard-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`
  (`sign`), `t` the time of the attempt.
- Never in a write's way: the worker is one background task per process; the writes only
  insert outbox rows. Every attempt is logged (`Store.settle_webhook`) and counted
  (`on_outcome` with one of `metrics.WEBHOOK_OUTCOMES`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import orjson

from scoreboard.aio import stop_task
from scoreboard.domain.errors import ServiceUnavailable
from scoreboard.domain.times import rfc3339, utcnow
from scoreboard.store.base import Store
from scoreboard.store.outbox import Attempt, OutboxEntry

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Scoreboard-Signature"
SEND_TIMEOUT_SECONDS = 5.0
# A claimed webhook is no other sender's for this long: well beyond one attempt's timeout.
LEASE_SECONDS = 60.0
CLAIM_BATCH = 16


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The `Scoreboard-Signature` header value of `body` sent at `timestamp` (unix s)."""
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def body_of(entry: OutboxEntry) -> bytes:
    """The JSON body of a webhook: the same bytes on every attempt."""
    return orjson.dumps(
        {
            "id": entry.webhook_id,
            "type": entry.type,
            "created_at": rfc3339(entry.created_at),
            "data": entry.data,
        }
    )


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter: attempt n failed → the next one after
    `base * 2**(n-1)` seconds (at most `cap`), times a random factor in [0.5, 1). A webhook
    still failing `give_up_seconds` after it was created is given up."""

    base: float = 5.0
    cap: float = 3600.0
    give_up_seconds: float = 24 * 3600.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        raw = min(self.cap, self.base * 2.0 ** min(attempt - 1, 40))
        return raw * (0.5 + rng.random() / 2)


class OutboxWorker:
    """Claims due webhooks and sends them, one task per process (`start`/`close`).

    `backoff` and `poll_seconds` (how often an idle worker looks for due webhooks; `wake`
    makes it look at once) are not settings: tests shorten them."""

    def __init__(
        self,
        store: Store,
        url: str,
        secret: str,
        *,
        backoff: Backoff | None = None,
        poll_seconds: float = 1.0,
        on_outcome: Callable[[str], None] = lambda outcome: None,
        rng: random.Random | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._store = store
        self._url = url
        self._secret = secret
        self._backoff = backoff or Backoff()
        self._poll = poll_seconds
        self._on_outcome = on_outcome
        self._rng = rng or random.Random()
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self._client = httpx.AsyncClient(
            timeout=SEND_TIMEOUT_SECONDS, transport=self._transport, follow_redirects=False
        )
        self._task = asyncio.create_task(self._run(), name="webhook-delivery")

    async def close(self) -> None:
        await stop_task(self._task)
        self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def wake(self) -> None:
        """A webhook was enqueued here: look for due ones now rather than at the next poll."""
        self._wake.set()

    # -- delivery ------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                sent = await self.deliver_due()
            except ServiceUnavailable:  # the store logged it; the rows wait in the outbox
                sent = 0
            except Exception:
                log.exception("webhooks: delivery pass failed; retrying")
                sent = 0
            if sent:
                continue  # more may be due
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)

    async def deliver_due(self) -> int:
        """Claim the due webhooks and make one attempt at each, concurrently; how many."""
        now = utcnow()
        entries = await self._store.claim_webhooks(
            now, now + timedelta(seconds=LEASE_SECONDS), CLAIM_BATCH
        )
        await asyncio.gather(*(self._attempt(entry) for entry in entries))
        return len(entries)

    async def _attempt(self, entry: OutboxEntry) -> None:
        assert self._client is not None, "start() the worker first"
        body = body_of(entry)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._secret, body, int(time.time())),
        }
        at = utcnow()
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            response = await self._client.post(self._url, content=body, headers=headers)
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        duration_ms = int((time.perf_counter() - started) * 1000)
        delivered = error is None
        next_at = None if delivered else self._next_attempt(entry, at)
        outcome = "delivered" if delivered else "retried" if next_at is not None else "failed"
        if outcome == "failed":
            log.warning("webhook %s (%s) given up: %s", entry.webhook_id, entry.type, error)
        attempt = Attempt(
            entry.webhook_id, entry.attempt, at, status, error, duration_ms, delivered, next_at
        )
        try:
            await self._store.settle_webhook(attempt)
        except ServiceUnavailable:  # unsettled: its lease ends and it is sent again
            log.warning("webhook %s: its outcome could not be recorded", entry.webhook_id)
        self._on_outcome(outcome)

    def _next_attempt(self, entry: OutboxEntry, failed_at: datetime) -> datetime | None:
        if (failed_at - entry.created_at).total_seconds() >= self._backoff.give_up_seconds:
            return None
        return failed_at + timedelta(seconds=self._backoff.delay(entry.attempt, self._rng))
