"""Retention of idempotency keys (`SCOREBOARD_IDEMPOTENCY_RETENTION_DAYS`, docs/OPERATIONS.md
"History and retention"), on SQLite and PostgreSQL: only expired keys are deleted, in batches;
a replay of an expired key is a new event; the service's upkeep applies the setting and never
fails start-up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from tests.api.conftest import make_settings
from tests.conftest import free_port, lifespan

from scoreboard.app import create_app
from scoreboard.config import Settings
from scoreboard.service.history import HistoryUpkeep
from scoreboard.store.base import Outcome, ScoreCommand, UserRecord
from scoreboard.store.migrate import run_migrations
from scoreboard.store.sql import SqlStore


@contextmanager
def deletes(store: SqlStore) -> Iterator[list[str]]:
    """The DELETE statements the store's write engine sends while the block runs."""
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            seen.append(statement)

    engine = store._engines.write.sync_engine
    sa_event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)


def keyed(user: UserRecord, key: str, points: int = 10) -> ScoreCommand:
    return ScoreCommand(user.user_id, "T", points, idempotency_key=key, request_hash="h")


async def test_retention_deletes_only_expired_keys_in_batches(store: SqlStore) -> None:
    alice = await store.create_user("alice", None, "Alice")
    old = await store.record_events([keyed(alice, f"old{i}") for i in range(7)])
    await asyncio.sleep(0.01)
    cutoff = datetime.now(UTC)
    await asyncio.sleep(0.01)
    (young,) = await store.record_events([keyed(alice, "young")])
    with deletes(store) as seen:
        assert await store.expire_idempotency_keys(cutoff, batch=3, pause=0) == 7
    assert len(seen) == 3  # 3 + 3 + 1: each batch its own statement (and transaction)
    assert await store.expire_idempotency_keys(cutoff, batch=3, pause=0) == 0
    assert await store.count_events() == 8  # the events stay
    # The young key still replays; an expired one is free: the same request is a new event.
    (again,) = await store.record_events([keyed(alice, "young")])
    assert again.outcome is Outcome.REPLAYED and again.event is not None
    assert young.event is not None and again.event.event_id == young.event.event_id
    (anew,) = await store.record_events([keyed(alice, "old0")])
    assert anew.outcome is Outcome.RECORDED and anew.event is not None
    assert old[0].event is not None and anew.event.event_id > old[0].event.event_id
    assert anew.event.new_score == 90
    (then,) = await store.record_events([keyed(alice, "old0")])  # the key is taken again
    assert then.outcome is Outcome.REPLAYED and then.event is not None
    assert then.event.event_id == anew.event.event_id


async def test_a_key_expiring_under_a_claim_is_claimed_again(store: SqlStore) -> None:
    """Retention deletes a key between a batch's claim (which saw it taken) and its read of
    the taken keys: the request is recorded as with any expired key, never refused."""
    alice = await store.create_user("alice", None, "Alice")
    (first,) = await store.record_events([keyed(alice, "k")])
    writer = store._engines.batch_writer
    engine = writer._engine if writer is not None else store._engines.write.sync_engine
    expired: list[bool] = []

    def expire(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("SELECT idempotency_keys.") and not expired:
            expired.append(True)  # what retention's commit looks like to this transaction
            cursor.execute("DELETE FROM idempotency_keys")

    sa_event.listen(engine, "before_cursor_execute", expire)
    try:
        (second,) = await store.record_events([keyed(alice, "k")])
    finally:
        sa_event.remove(engine, "before_cursor_execute", expire)
    assert expired and second.outcome is Outcome.RECORDED and second.event is not None
    assert first.event is not None and second.event.event_id != first.event.event_id
    (third,) = await store.record_events([keyed(alice, "k")])
    assert third.outcome is Outcome.REPLAYED and third.event is not None
    assert third.event.event_id == second.event.event_id


async def test_the_retention_setting(store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCOREBOARD_IDEMPOTENCY_RETENTION_DAYS", "30")
    assert Settings(_env_file=None).idempotency_retention_days == 30  # type: ignore[call-arg]
    monkeypatch.delenv("SCOREBOARD_IDEMPOTENCY_RETENTION_DAYS")
    assert Settings(_env_file=None).idempotency_retention_days == 0  # type: ignore[call-arg]
    alice = await store.create_user("alice", None, "Alice")
    await store.record_events([keyed(alice, f"k{i}") for i in range(5)])

    def later(days: float) -> datetime:
        return datetime.now(UTC) + timedelta(days=days)

    forever = HistoryUpkeep(store, retention_days=0, now=lambda: later(10_000))
    assert (await forever.run_once())[1] == 0  # 0: kept forever, however old
    month = HistoryUpkeep(store, retention_days=30, batch=2, pause=0, now=lambda: later(29))
    assert (await month.run_once())[1] == 0  # not expired yet
    month = HistoryUpkeep(store, retention_days=30, batch=2, pause=0, now=lambda: later(31))
    assert (await month.run_once())[1] == 5
    (anew,) = await store.record_events([keyed(alice, "k0")])
    assert anew.outcome is Outcome.RECORDED


async def test_the_app_keeps_keys_the_configured_time(database_url: str, tmp_path: Path) -> None:
    await run_migrations(database_url)
    for days in (0, 7):
        settings = make_settings(database_url, tmp_path, idempotency_retention_days=days)
        app = create_app(settings)
        async with lifespan(app):
            assert app.state.services.history.retention_days == days


async def test_a_failing_upkeep_never_stops_start_up(caplog: pytest.LogCaptureFixture) -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nothing"  # nobody listens
    store = await SqlStore.open(url, timeout=0.5)
    upkeep = HistoryUpkeep(store, retention_days=1)
    try:
        with caplog.at_level(logging.WARNING):
            await upkeep.start()
            assert await upkeep.run_once() == ([], 0)
    finally:
        await upkeep.close()
        await store.close()
    assert "creating the event partitions ahead failed" in caplog.text
    assert "idempotency retention failed" in caplog.text
