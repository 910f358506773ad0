"""The webhook outbox and its delivery worker (API.md section 6, docs/WEBHOOKS.md) on SQLite
and PostgreSQL, against a real receiver: signatures, retries with backoff, giving up, the
delivery log, and two workers on one PostgreSQL never sending one webhook twice."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from tests.service.webhook_receiver import Receiver, receiving, signature_ok

from scoreboard.config import Settings
from scoreboard.domain.errors import ValidationFailed
from scoreboard.domain.times import utcnow
from scoreboard.service.outbox import Backoff, OutboxWorker, sign
from scoreboard.service.webhooks import WebhookService
from scoreboard.store.migrate import run_migrations
from scoreboard.store.outbox import Attempt
from scoreboard.store.schema import webhook_outbox
from scoreboard.store.sql import SqlStore
from scoreboard.store.sql_outbox import enqueue

SECRET = "whsec-test"


@asynccontextmanager
async def worker_for(
    store: SqlStore, receiver: Receiver, backoff: Backoff, outcomes: list[str]
) -> AsyncIterator[OutboxWorker]:
    worker = OutboxWorker(
        store, receiver.url, SECRET, backoff=backoff, poll_seconds=0.02, on_outcome=outcomes.append
    )
    worker.start()
    try:
        yield worker
    finally:
        await worker.close()


async def outbox_row(store: SqlStore, webhook_id: str) -> Any:
    async with store._engines.read.connect() as conn:
        query = sa.select(webhook_outbox).where(webhook_outbox.c.id == webhook_id)
        return (await conn.execute(query)).one()


def test_the_signature_is_the_documented_hmac() -> None:
    body = b'{"id":"x"}'
    header = sign(SECRET, body, 1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    assert signature_ok(SECRET, header, body)
    assert not signature_ok("another secret", header, body)
    assert not signature_ok(SECRET, header, body + b" ")


def test_one_of_url_and_secret_alone_stops_start_up() -> None:
    with pytest.raises(ValueError, match="set both or neither"):
        Settings(_env_file=None, webhook_url="http://127.0.0.1:9/x")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="set both or neither"):
        Settings(_env_file=None, webhook_secret="s")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="http:// or https://"):
        Settings(_env_file=None, webhook_url="ftp://h/x", webhook_secret="s")  # type: ignore[call-arg]
    both = Settings(_env_file=None, webhook_url="https://h/x", webhook_secret="s")  # type: ignore[call-arg]
    assert both.webhooks_enabled


async def test_a_dedupe_key_is_enqueued_once(store: SqlStore) -> None:
    first = await store.enqueue_webhook("user.banned", {"user_id": "u1"}, dedupe_key="k")
    again = await store.enqueue_webhook("user.banned", {"user_id": "u2"}, dedupe_key="k")
    unkeyed = [await store.enqueue_webhook("user.flagged", {"n": n}) for n in range(2)]
    assert first is not None and again is None
    assert None not in unkeyed and len({first, *unkeyed}) == 3
    row = await outbox_row(store, first)
    assert row.payload == {"user_id": "u1"} and row.attempts == 0


async def test_enqueue_commits_with_its_cause_or_not_at_all(store: SqlStore) -> None:
    """What moderation does: the webhook inside the (sync) transaction of its cause."""

    def ban(conn: sa.Connection, then_fail: bool) -> str | None:
        written = enqueue(conn, "user.banned", {"user_id": "u1"}, dedupe_key="ban:u1:1")
        if then_fail:
            raise RuntimeError("the cause failed")
        return written

    with pytest.raises(RuntimeError):
        async with store._engines.write.begin() as conn:
            await conn.run_sync(ban, True)
    async with store._engines.read.connect() as conn:
        assert (await conn.execute(sa.select(webhook_outbox))).all() == []
    async with store._engines.write.begin() as conn:
        webhook_id = await conn.run_sync(ban, False)
    assert webhook_id is not None and (await outbox_row(store, webhook_id)).type == "user.banned"
    async with store._engines.write.begin() as conn:
        assert await conn.run_sync(ban, False) is None  # the key is taken


async def test_a_claim_is_leased_and_a_stale_outcome_is_ignored(store: SqlStore) -> None:
    webhook_id = await store.enqueue_webhook("user.banned", {"user_id": "u1"})
    now = utcnow()
    lease = now + timedelta(seconds=60)
    (entry,) = await store.claim_webhooks(now, lease, 10)
    assert (entry.webhook_id, entry.attempt, entry.data) == (webhook_id, 1, {"user_id": "u1"})
    assert await store.claim_webhooks(now, lease, 10) == []  # leased: nobody else's
    # The lease ended (the claimer died): due again, as attempt 2.
    (again,) = await store.claim_webhooks(lease, lease + timedelta(seconds=60), 10)
    assert again.attempt == 2
    # The first claimer's late outcome is logged but decides nothing.
    late = Attempt(webhook_id or "", 1, now, 200, None, 3, True, None)
    await store.settle_webhook(late)
    assert (await outbox_row(store, entry.webhook_id)).delivered_at is None
    await store.settle_webhook(Attempt(entry.webhook_id, 2, now, 204, None, 4, True, None))
    row = await outbox_row(store, entry.webhook_id)
    assert row.delivered_at is not None and row.next_attempt_at is None
    log = await store.webhook_deliveries(10)
    assert [(d.attempt, d.status_code) for d in log] == [(2, 204), (1, 200)]


async def test_failures_are_retried_with_backoff_until_delivered(store: SqlStore) -> None:
    backoff = Backoff(base=0.05)
    outcomes: list[str] = []
    with receiving(SECRET, fail_first=3) as receiver:
        async with worker_for(store, receiver, backoff, outcomes) as worker:
            webhook_id = await store.enqueue_webhook("user.flagged", {"user_id": "u1"})
            worker.wake()
            await receiver.wait_for(lambda: "delivered" in outcomes)  # settled, then counted
    assert receiver.bad_signatures == 0
    assert receiver.attempts[webhook_id or ""] == 4
    (payload,) = receiver.delivered
    assert payload["id"] == webhook_id and payload["type"] == "user.flagged"
    assert payload["data"] == {"user_id": "u1"} and payload["created_at"].endswith("Z")
    log = list(reversed(await store.webhook_deliveries(10)))
    assert [(d.attempt, d.status_code, d.error) for d in log] == [
        (1, 500, "HTTP 500"),
        (2, 500, "HTTP 500"),
        (3, 500, "HTTP 500"),
        (4, 204, None),
    ]
    # Attempt n failed: the next waits at least half of base * 2**(n-1) (the jitter's floor).
    for n, (failed, next_one) in enumerate(itertools.pairwise(log), start=1):
        assert (next_one.at - failed.at).total_seconds() >= 0.5 * 0.05 * 2 ** (n - 1)
    assert outcomes == ["retried", "retried", "retried", "delivered"]
    row = await outbox_row(store, webhook_id or "")
    assert row.attempts == 4 and row.last_error is None and row.delivered_at is not None


async def test_a_webhook_failing_past_the_retry_period_is_given_up_and_kept(
    store: SqlStore,
) -> None:
    outcomes: list[str] = []
    with receiving(SECRET, fail_first=100) as receiver:
        async with worker_for(store, receiver, Backoff(give_up_seconds=0), outcomes) as worker:
            webhook_id = await store.enqueue_webhook("user.banned", {"user_id": "u1"})
            worker.wake()
            await receiver.wait_for(lambda: outcomes == ["failed"])
    row = await outbox_row(store, webhook_id or "")
    assert (row.delivered_at, row.next_attempt_at, row.last_error) == (None, None, "HTTP 500")
    assert await store.claim_webhooks(utcnow() + timedelta(days=2), utcnow(), 10) == []


async def test_an_unreachable_receiver_is_an_attempt_with_no_status(store: SqlStore) -> None:
    with receiving(SECRET) as receiver:
        url = receiver.url  # closed on leaving: nothing listens there any more
    outcomes: list[str] = []
    worker = OutboxWorker(store, url, SECRET, backoff=Backoff(base=60), on_outcome=outcomes.append)
    worker.start()
    try:
        await store.enqueue_webhook("user.banned", {"user_id": "u1"})
        assert await worker.deliver_due() == 1
    finally:
        await worker.close()
    (attempt,) = await store.webhook_deliveries(10)
    assert attempt.status_code is None and attempt.error and "Connect" in attempt.error
    assert outcomes == ["retried"]
    assert await store.claim_webhooks(utcnow(), utcnow(), 10) == []  # next one in 30 s or more


async def test_the_delivery_log_pages_newest_first(store: SqlStore) -> None:
    webhooks = WebhookService(store)
    webhook_id = await store.enqueue_webhook("user.banned", {"user_id": "u1"}) or ""
    for n in range(1, 6):
        attempt = Attempt(webhook_id, n, utcnow(), 500, "HTTP 500", n, False, utcnow())
        await store.settle_webhook(attempt)
    first = await webhooks.deliveries(2)
    assert [d.attempt for d in first.items] == [5, 4] and first.next_cursor
    second = await webhooks.deliveries(2, first.next_cursor)
    third = await webhooks.deliveries(2, second.next_cursor)
    assert [d.attempt for d in second.items] == [3, 2]
    assert [d.attempt for d in third.items] == [1] and third.next_cursor is None
    assert {d.type for d in first.items} == {"user.banned"}
    with pytest.raises(ValidationFailed):
        await webhooks.deliveries(2, "12a")


async def test_two_workers_on_one_postgresql_never_send_one_webhook_twice(
    fresh_pg_url: str,
) -> None:
    await run_migrations(fresh_pg_url)
    stores = [await SqlStore.open(fresh_pg_url) for _ in range(2)]
    outcomes: list[str] = []
    try:
        ids = [await stores[0].enqueue_webhook("user.flagged", {"n": n}) for n in range(60)]
        with receiving(SECRET) as receiver:
            async with (
                worker_for(stores[0], receiver, Backoff(), outcomes),
                worker_for(stores[1], receiver, Backoff(), outcomes),
            ):
                await receiver.wait_for(lambda: len(outcomes) >= 60)
                await asyncio.sleep(0.2)  # room for a duplicate to arrive, if there were one
        assert outcomes == ["delivered"] * 60
        assert sorted(receiver.attempts) == sorted(i for i in ids if i)
        assert set(receiver.attempts.values()) == {1}
    finally:
        for store in stores:
            await store.close()
