"""The store's API keys, roles and admin audit log, and append-only in the database:
`score_events` and `admin_audit` refuse UPDATE and DELETE (triggers, migration 0005), on
SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from scoreboard.domain.errors import NameTaken
from scoreboard.store.base import AuditEntry, ScoreCommand
from scoreboard.store.sql import SqlStore


async def run_sql(database_url: str, statement: str) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text(statement))
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE score_events SET points = 1000",
        "DELETE FROM score_events",
        "UPDATE admin_audit SET reason = 'nothing happened'",
        "DELETE FROM admin_audit",
    ],
)
async def test_the_logs_refuse_update_and_delete(
    store: SqlStore, database_url: str, statement: str
) -> None:
    user = await store.create_user("alice", None, "Alice")
    [done] = await store.record_events([ScoreCommand(user.user_id, "TASK_COMPLETED", 10)])
    assert done.event is not None
    await store.append_audit(AuditEntry("cli:root", "promote", user.user_id, ""))
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        await run_sql(database_url, statement)
    assert await store.count_events() == 1 and await store.sum_event_points() == 10
    [entry] = await store.audit_page(10)
    assert entry.reason == ""
    # Deleting an account keeps its events (the trigger would refuse otherwise).
    assert await store.delete_user(user.user_id)
    assert await store.count_events() == 1


async def test_events_keep_their_source(store: SqlStore, database_url: str) -> None:
    user = await store.create_user("bob", None, "Bob")
    commands = [
        ScoreCommand(user.user_id, "TASK_COMPLETED", 10),
        ScoreCommand(user.user_id, "TASK_COMPLETED", 10, source="apikey:backend"),
    ]
    await store.record_events(commands)
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(sa.text("SELECT source FROM score_events ORDER BY id"))
            assert [row[0] for row in rows] == ["user", "apikey:backend"]
    finally:
        await engine.dispose()


async def test_api_keys(store: SqlStore) -> None:
    made = await store.create_api_key("backend", "scorer", "a" * 64)
    assert made.active and made.last_used_at is None
    with pytest.raises(NameTaken):
        await store.create_api_key("backend", "admin", "b" * 64)
    assert await store.api_key_by_hash("a" * 64) == made
    assert await store.api_key_by_hash("c" * 64) is None
    await store.touch_api_key("backend")
    touched = await store.api_key_by_hash("a" * 64)
    assert touched is not None and touched.last_used_at is not None
    revoked = await store.revoke_api_key("backend")
    assert revoked is not None and not revoked.active
    again = await store.revoke_api_key("backend")
    assert again is not None and again.revoked_at == revoked.revoked_at  # the first time stays
    assert await store.revoke_api_key("nope") is None
    with pytest.raises(NameTaken):  # a revoked key keeps its name
        await store.create_api_key("backend", "scorer", "d" * 64)
    await store.create_api_key("a-first", "admin", "e" * 64)
    assert [k.name for k in await store.api_keys()] == ["a-first", "backend"]


async def test_roles_change_with_their_audit_entry(store: SqlStore) -> None:
    user = await store.create_user("carol", None, "Carol")
    assert user.roles == frozenset()
    entry = AuditEntry("cli:root", "promote", user.user_id, "why")
    promoted = await store.set_role(user.user_id, "admin", True, entry)
    assert promoted is not None and promoted.roles == {"admin"}
    assert (await store.get_user(user.user_id)) == promoted
    demoted = await store.set_role(user.user_id, "admin", False, entry)
    assert demoted is not None and demoted.roles == frozenset()
    assert await store.set_role("missing", "admin", True, entry) is None
    assert len(await store.audit_page(10)) == 2  # nothing for the missing user


async def test_audit_pages_newest_first(store: SqlStore) -> None:
    for n in range(5):
        await store.append_audit(AuditEntry("apikey:ops", "void", f"event:{n}", ""))
    first = await store.audit_page(3)
    assert [r.target for r in first] == ["event:4", "event:3", "event:2"]
    rest = await store.audit_page(3, before=first[-1].audit_id)
    assert [r.target for r in rest] == ["event:1", "event:0"]
