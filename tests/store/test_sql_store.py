"""Contract tests of SqlStore: every test body runs on SQLite and on a fresh PostgreSQL database.

Real databases only. Faults are made with a small TCP proxy the test controls (black-holing a
connection), never by touching the machine's PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from tests.conftest import free_port

from scoreboard.domain.errors import NotFound, ServiceUnavailable, UsernameTaken
from scoreboard.domain.ranking import SCORE_MAX, Standing, rank_all
from scoreboard.store.base import EventRecord, Outcome, ScoreCommand, Store, UserRecord
from scoreboard.store.engine import async_url
from scoreboard.store.migrate import run_migrations
from scoreboard.store.schema import users
from scoreboard.store.sql import SqlStore


def cmd(user: UserRecord | str, points: int = 10, **kw: Any) -> ScoreCommand:
    user_id = user if isinstance(user, str) else user.user_id
    return ScoreCommand(user_id=user_id, action_type="TASK_COMPLETED", points=points, **kw)


async def make_users(store: Store, *names: str) -> list[UserRecord]:
    return [await store.create_user(name, "hash", name.title()) for name in names]


async def all_standings(store: Store, page_size: int = 1000) -> list[Standing]:
    return [s async for page in store.iter_standings(page_size) for s in page]


def as_replayed(event: EventRecord | None) -> EventRecord | None:
    """The record a replay of `event` answers with: the same, without the boards."""
    return None if event is None else dataclasses.replace(event, boards=())


def aware_utc(value: datetime) -> bool:
    return value.tzinfo is not None and value.utcoffset() == UTC.utcoffset(None)


# -- users -------------------------------------------------------------------------------------
async def test_create_and_get_user(store: SqlStore) -> None:
    user = await store.create_user(
        "alice", "h1", "Alice", avatar_url="http://a/x.png", region="eu", external_subject="i|s"
    )
    assert re.fullmatch(r"[0-9a-f]{16}", user.user_id)
    assert (user.username, user.display_name, user.password_hash) == ("alice", "Alice", "h1")
    assert (user.avatar_url, user.region, user.external_subject) == ("http://a/x.png", "eu", "i|s")
    assert user.active and aware_utc(user.created_at)
    assert await store.get_user(user.user_id) == user
    assert await store.get_user_by_username("alice") == user
    assert await store.get_user_by_username("ALICE") is None
    assert await store.get_user_by_subject("i|s") == user
    assert await store.get_user("0000000000000000") is None
    assert await store.get_user_by_subject("nobody") is None


async def test_get_users_in_one_call(store: SqlStore) -> None:
    alice, bob, carol = await make_users(store, "alice", "bob", "carol")
    assert await store.delete_user(carol.user_id)
    found = await store.get_users([alice.user_id, bob.user_id, carol.user_id, "0" * 16])
    assert found == {
        alice.user_id: alice,
        bob.user_id: bob,
        carol.user_id: await store.get_user(carol.user_id),  # deleted ones included
    }
    assert not found[carol.user_id].active
    assert await store.get_users([]) == {}


async def test_username_and_subject_are_unique(store: SqlStore) -> None:
    await store.create_user("bob", None, "Bob", external_subject="iss|1")
    with pytest.raises(UsernameTaken) as caught:
        await store.create_user("bob", None, "Other")
    assert [d["field"] for d in caught.value.details or []] == ["username"]
    with pytest.raises(UsernameTaken) as caught:
        await store.create_user("bobby", None, "Bobby", external_subject="iss|1")
    assert [d["field"] for d in caught.value.details or []] == ["external_subject"]
    assert await store.get_user_by_username("bobby") is None
    # Several users without an external subject are fine (NULLs are distinct).
    await make_users(store, "carol", "dave")


async def test_update_profile(store: SqlStore) -> None:
    (user,) = await make_users(store, "erin")
    updated = await store.update_profile(user.user_id, display_name="Erin E.", region="us")
    assert updated is not None
    assert (updated.display_name, updated.region, updated.avatar_url) == ("Erin E.", "us", None)
    assert await store.update_profile(user.user_id) == updated
    assert await store.get_user(user.user_id) == updated
    assert await store.update_profile("ffffffffffffffff", display_name="x") is None
    await store.delete_user(user.user_id)
    assert await store.update_profile(user.user_id, display_name="ghost") is None


async def test_delete_user(store: SqlStore) -> None:
    alice, bob = await make_users(store, "alice", "bob")
    await store.record_events([cmd(alice, 5, at_us=1), cmd(bob, 7, at_us=2)])
    assert await store.delete_user(alice.user_id) is True
    assert await store.delete_user(alice.user_id) is False
    assert await store.delete_user("ffffffffffffffff") is False
    gone = await store.get_user(alice.user_id)
    assert gone is not None and not gone.active and gone.deleted_at is not None
    assert aware_utc(gone.deleted_at)
    assert await store.get_user_by_username("alice") == gone
    assert await store.standing_of(alice.user_id) is None
    assert [s.user_id for s in await all_standings(store)] == [bob.user_id]
    assert await store.standings_page(10, 0) == ([Standing(bob.user_id, "Bob", 7, 2)], 1)
    # Events stay in the audit log; new events for the deleted user are refused.
    assert await store.count_events() == 2
    outcomes = await store.record_events([cmd(alice, 1), cmd(bob, 1)])
    assert [o.outcome for o in outcomes] == [Outcome.USER_GONE, Outcome.RECORDED]
    assert outcomes[0].event is None
    assert await store.count_events() == 3


# -- recording ---------------------------------------------------------------------------------
async def test_record_events_accumulates(store: SqlStore) -> None:
    (user,) = await make_users(store, "alice")
    assert await store.record_events([]) == []
    first, second = await store.record_events([cmd(user, 10, at_us=100), cmd(user, 5, at_us=200)])
    third, zero = await store.record_events([cmd(user, -3, at_us=300), cmd(user, 0, at_us=400)])
    assert [o.outcome for o in (first, second, third, zero)] == [Outcome.RECORDED] * 4
    events = [o.event for o in (first, second, third, zero)]
    assert all(e is not None for e in events)
    assert [(e.new_score, e.version, e.reached_at_us) for e in events if e] == [
        (10, 1, 100),
        (15, 2, 200),
        (12, 3, 300),
        (12, 4, 300),  # zero points reach no new score: the tie-breaker time stays
    ]
    e = events[0]
    assert e is not None
    assert (e.user_id, e.display_name, e.action_type, e.points) == (
        user.user_id,
        "Alice",
        "TASK_COMPLETED",
        10,
    )
    assert aware_utc(e.created_at)
    assert len({ev.event_id for ev in events if ev}) == 4
    assert e.standing() == Standing(user.user_id, "Alice", 10, 100)
    assert await store.standing_of(user.user_id) == (Standing(user.user_id, "Alice", 12, 300), 1)
    assert await store.count_events() == 4
    assert await store.sum_event_points() == 12


async def test_at_us_zero_means_now(store: SqlStore) -> None:
    (user,) = await make_users(store, "alice")
    before = time.time_ns() // 1000
    (outcome,) = await store.record_events([cmd(user, 1)])
    assert outcome.event is not None
    assert before <= outcome.event.reached_at_us <= time.time_ns() // 1000


async def test_idempotency_replay_and_conflict(store: SqlStore) -> None:
    alice, bob = await make_users(store, "alice", "bob")
    (first,) = await store.record_events([cmd(alice, 10, idempotency_key="k", request_hash="h")])
    assert first.outcome is Outcome.RECORDED and first.event is not None
    await store.record_events([cmd(alice, 5)])  # the score moves on after the keyed event
    (again,) = await store.record_events([cmd(alice, 10, idempotency_key="k", request_hash="h")])
    assert again.outcome is Outcome.REPLAYED
    # The original record (new_score right after that event), without its boards.
    assert again.event == as_replayed(first.event)
    (other,) = await store.record_events([cmd(alice, 10, idempotency_key="k", request_hash="h2")])
    assert other.outcome is Outcome.CONFLICT and other.event is None
    # Keys are per user.
    (bobs,) = await store.record_events([cmd(bob, 10, idempotency_key="k", request_hash="h2")])
    assert bobs.outcome is Outcome.RECORDED
    assert await store.count_events() == 3
    standing = await store.standing_of(alice.user_id)
    assert standing is not None and standing[0].score == 15


async def test_idempotency_within_one_batch(store: SqlStore) -> None:
    (user,) = await make_users(store, "alice")
    outcomes = await store.record_events(
        [
            cmd(user, 10, idempotency_key="k", request_hash="h"),
            cmd(user, 10, idempotency_key="k", request_hash="h"),
            cmd(user, 10, idempotency_key="k", request_hash="x"),
        ]
    )
    assert [o.outcome for o in outcomes] == [Outcome.RECORDED, Outcome.REPLAYED, Outcome.CONFLICT]
    assert as_replayed(outcomes[0].event) == outcomes[1].event
    assert await store.count_events() == 1


async def test_batch_with_mixed_outcomes(store: SqlStore) -> None:
    alice, bob, gone = await make_users(store, "alice", "bob", "gone")
    await store.record_events([cmd(alice, 1, idempotency_key="used", request_hash="h")])
    await store.delete_user(gone.user_id)
    outcomes = await store.record_events(
        [
            cmd(alice, 10, at_us=10),
            cmd(gone, 10),
            cmd("not-a-user", 10),
            cmd(alice, 10, idempotency_key="used", request_hash="other"),
            cmd(bob, SCORE_MAX),
            cmd(bob, 1),  # would overflow 64 bits: refused, the batch goes on
            cmd(alice, 1, idempotency_key="used", request_hash="h"),
            cmd(bob, -5, at_us=20),
        ]
    )
    assert [o.outcome for o in outcomes] == [
        Outcome.RECORDED,
        Outcome.USER_GONE,
        Outcome.USER_GONE,
        Outcome.CONFLICT,
        Outcome.RECORDED,
        Outcome.CONFLICT,
        Outcome.REPLAYED,
        Outcome.RECORDED,
    ]
    last = outcomes[-1].event
    assert last is not None and last.new_score == SCORE_MAX - 5
    board, total = await store.standings_page(10, 0)
    assert total == 2
    assert [(s.user_id, s.score) for s in board] == [
        (bob.user_id, SCORE_MAX - 5),
        (alice.user_id, 11),
    ]
    assert await store.count_events() == 4
    assert await store.sum_event_points() == 1 + 10 + SCORE_MAX - 5


async def test_refused_command_leaves_its_key_free(store: SqlStore) -> None:
    (user,) = await make_users(store, "alice")
    await store.record_events([cmd(user, SCORE_MAX)])
    (refused,) = await store.record_events([cmd(user, 1, idempotency_key="k", request_hash="h")])
    assert refused.outcome is Outcome.CONFLICT
    (retry,) = await store.record_events([cmd(user, -1, idempotency_key="k", request_hash="h")])
    assert retry.outcome is Outcome.RECORDED


async def test_key_of_a_refused_command_is_used_by_the_next_in_the_batch(store: SqlStore) -> None:
    (user,) = await make_users(store, "alice")
    await store.record_events([cmd(user, SCORE_MAX - 1)])
    outcomes = await store.record_events(
        [
            cmd(user, 5, idempotency_key="k", request_hash="first"),  # overflows: refused
            cmd(user, -1, idempotency_key="k", request_hash="second"),
            cmd(user, -1, idempotency_key="k", request_hash="first"),
        ]
    )
    assert [o.outcome for o in outcomes] == [Outcome.CONFLICT, Outcome.RECORDED, Outcome.CONFLICT]
    (later,) = await store.record_events(
        [cmd(user, -1, idempotency_key="k", request_hash="second")]
    )
    assert later.outcome is Outcome.REPLAYED and later.event == as_replayed(outcomes[1].event)


async def test_large_batch(store: SqlStore, database_url: str) -> None:
    """More users and keys than one statement's chunk: everything still lands exactly once."""
    ids = [f"user{n:04d}" for n in range(600)]
    await insert_users_with_ids(database_url, ids)
    commands = [
        cmd(ids[n % len(ids)], 1 + n % 3, idempotency_key=f"k{n}", request_hash="h", at_us=n + 1)
        for n in range(1300)
    ]
    outcomes = await store.record_events(commands)
    assert all(o.outcome is Outcome.RECORDED for o in outcomes)
    events = [o.event for o in outcomes if o.event]
    assert len({e.event_id for e in events}) == 1300
    expected = {user_id: 0 for user_id in ids}
    for command, event in zip(commands, events, strict=True):
        expected[command.user_id] += command.points
        assert event.user_id == command.user_id and event.points == command.points
    board, total = await store.standings_page(1000, 0)
    assert total == 600 and {s.user_id: s.score for s in board} == expected
    assert board == sorted(board, key=Standing.sort_key)
    replays = await store.record_events(commands)
    assert [o.outcome for o in replays] == [Outcome.REPLAYED] * 1300
    assert [o.event for o in replays] == [as_replayed(o.event) for o in outcomes]
    assert await store.count_events() == 1300


# -- ranking -----------------------------------------------------------------------------------
async def insert_users_with_ids(url: str, ids: list[str]) -> None:
    """Users with chosen ids (the store generates hex ids), to test the byte order of ids."""
    engine = create_async_engine(async_url(url), poolclass=NullPool)
    now = datetime.now(UTC)
    rows = [
        {"user_id": i, "username": f"user{n}", "display_name": i, "created_at": now}
        for n, i in enumerate(ids)
    ]
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.insert(users), rows)
    finally:
        await engine.dispose()


async def test_ranking_order_and_ties(store: SqlStore, database_url: str) -> None:
    ids = ["a", "B", "_", "Z1", "b0", "~"]  # byte order: B < Z1 < _ < a < b0 < ~
    await insert_users_with_ids(database_url, ids)
    hexes = await make_users(store, "h1", "h2", "h3")
    # Same score for everyone; reached at the same time except h1 (earlier) and h2 (later).
    commands = [cmd(i, 50, at_us=1_000) for i in ids]
    commands += [cmd(hexes[0], 50, at_us=999), cmd(hexes[1], 50, at_us=1_001)]
    commands += [cmd(hexes[2], 60, at_us=5_000)]
    assert all(o.outcome is Outcome.RECORDED for o in await store.record_events(commands))
    board, total = await store.standings_page(100, 0)
    assert total == 9
    expected = [hexes[2].user_id, hexes[0].user_id, "B", "Z1", "_", "a", "b0", "~"]
    expected.append(hexes[1].user_id)
    assert [s.user_id for s in board] == expected
    assert board == sorted(board, key=Standing.sort_key)
    assert [e.user_id for e in rank_all(board)] == expected
    for rank, standing in enumerate(board, start=1):
        assert await store.standing_of(standing.user_id) == (standing, rank)
    # Keyset pages walk the same order, whatever the page size.
    for size in (1, 2, 4, 9, 50):
        assert await all_standings(store, size) == board
    page, total = await store.standings_page(3, 4)
    assert (page, total) == (board[4:7], 9)
    assert await store.standings_page(3, 20) == ([], 9)


async def test_empty_board_and_never_scored(store: SqlStore) -> None:
    (user,) = await make_users(store, "alice")
    assert await store.standings_page(10, 0) == ([], 0)
    assert await all_standings(store) == []
    assert await store.standing_of(user.user_id) is None
    assert await store.standing_of("unknown") is None
    assert await store.count_events() == 0
    assert await store.sum_event_points() == 0


async def test_earlier_reach_wins_until_overtaken(store: SqlStore) -> None:
    alice, bob = await make_users(store, "alice", "bob")
    await store.record_events([cmd(alice, 10, at_us=1), cmd(bob, 10, at_us=2)])
    assert [s.user_id for s in await all_standings(store)] == [alice.user_id, bob.user_id]
    await store.record_events([cmd(alice, 5, at_us=3), cmd(bob, 5, at_us=4)])
    assert [s.user_id for s in await all_standings(store)] == [alice.user_id, bob.user_id]
    await store.record_events([cmd(bob, 1, at_us=5)])
    assert await store.standing_of(bob.user_id) == (Standing(bob.user_id, "Bob", 16, 5), 1)
    assert await store.standing_of(alice.user_id) == (Standing(alice.user_id, "Alice", 15, 3), 2)


async def test_display_name_changes_show_on_the_board(store: SqlStore) -> None:
    (user,) = await make_users(store, "alice")
    await store.record_events([cmd(user, 3)])
    await store.update_profile(user.user_id, display_name="Queen A")
    (standing,) = await all_standings(store)
    assert standing.display_name == "Queen A"


# -- actions -----------------------------------------------------------------------------------
async def test_action_lifecycle(store: SqlStore) -> None:
    alice, bob = await make_users(store, "alice", "bob")
    at = datetime(2025, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)
    action = await store.start_action(alice.user_id, "TASK_COMPLETED", {"level": 3}, at)
    assert (action.status, action.started_at, action.metadata) == ("started", at, {"level": 3})
    assert action.open and not action.suspicious and action.ended_at is None
    assert await store.get_action(action.action_id) == action
    assert await store.get_action("missing") is None
    # Another user's action, or an unknown one, cannot be completed.
    outcomes = await store.record_events(
        [cmd(bob, 10, action_id=action.action_id), cmd(alice, 10, action_id="missing")]
    )
    assert [o.outcome for o in outcomes] == [Outcome.CONFLICT, Outcome.CONFLICT]
    done_at_us = 1_736_000_000_000_000
    (done,) = await store.record_events(
        [cmd(alice, 10, action_id=action.action_id, at_us=done_at_us, idempotency_key="c1")]
    )
    assert done.outcome is Outcome.RECORDED
    completed = await store.get_action(action.action_id)
    assert completed is not None and completed.status == "completed" and completed.points == 10
    assert completed.ended_at is not None and aware_utc(completed.ended_at)
    assert int(completed.ended_at.timestamp() * 1_000_000) == done_at_us
    # Points are awarded once: a retry with the key replays, a new completion conflicts.
    (replay,) = await store.record_events(
        [cmd(alice, 10, action_id=action.action_id, idempotency_key="c1")]
    )
    assert replay.outcome is Outcome.REPLAYED and replay.event == as_replayed(done.event)
    (twice,) = await store.record_events([cmd(alice, 10, action_id=action.action_id)])
    assert twice.outcome is Outcome.CONFLICT
    assert await store.cancel_action(action.action_id) is None
    assert await store.sum_event_points() == 10


async def test_cancel_and_flag_actions(store: SqlStore) -> None:
    (user,) = await make_users(store, "alice")
    action = await store.start_action(user.user_id, "TASK_COMPLETED")
    assert aware_utc(action.started_at) and action.metadata == {}
    cancelled = await store.cancel_action(action.action_id)
    assert cancelled is not None and cancelled.status == "cancelled" and not cancelled.open
    assert cancelled.ended_at is not None and cancelled.points is None
    assert await store.cancel_action(action.action_id) is None
    assert await store.cancel_action("missing") is None
    (late,) = await store.record_events([cmd(user, 10, action_id=action.action_id)])
    assert late.outcome is Outcome.CONFLICT
    assert await store.mark_suspicious(action.action_id) is True
    assert await store.mark_suspicious("missing") is False
    flagged = await store.get_action(action.action_id)
    assert flagged is not None and flagged.suspicious and flagged.status == "cancelled"
    assert await store.count_events() == 0


async def test_start_action_needs_an_active_user(store: SqlStore) -> None:
    (user,) = await make_users(store, "alice")
    with pytest.raises(NotFound):
        await store.start_action("ffffffffffffffff", "TASK_COMPLETED", {}, None)
    await store.delete_user(user.user_id)
    with pytest.raises(NotFound):
        await store.start_action(user.user_id, "TASK_COMPLETED")


# -- concurrency -------------------------------------------------------------------------------
async def test_racing_stores_record_a_keyed_event_once(database_url: str) -> None:
    """Two stores (two engines, as two processes would have) race with the same (user, key)."""
    await run_migrations(database_url)
    one, two = await SqlStore.open(database_url), await SqlStore.open(database_url)
    try:
        alice, bob = await make_users(one, "alice", "bob")
        rounds = 40
        for n in range(rounds):
            key = f"key-{n}"
            a = cmd(alice, 1, idempotency_key=key, request_hash="h")
            b = cmd(bob, 1, idempotency_key=key, request_hash="h")
            left, right = await asyncio.gather(one.record_events([a, b]), two.record_events([b, a]))
            for mine, theirs in ((left[0], right[1]), (left[1], right[0])):
                assert {mine.outcome, theirs.outcome} == {Outcome.RECORDED, Outcome.REPLAYED}
                assert as_replayed(mine.event) == as_replayed(theirs.event)
        assert await one.count_events() == 2 * rounds
        for user in (alice, bob):
            standing = await two.standing_of(user.user_id)
            assert standing is not None and standing[0].score == rounds
    finally:
        await one.close()
        await two.close()


async def test_racing_batches_in_opposite_user_order(database_url: str) -> None:
    """Batches touching the same users in opposite orders neither deadlock nor lose points."""
    await run_migrations(database_url)
    stores = [await SqlStore.open(database_url, timeout=10) for _ in range(3)]
    try:
        people = await make_users(stores[0], *(f"user{n}" for n in range(6)))
        forward = [cmd(p, 1) for p in people]
        backward = list(reversed(forward))
        for _ in range(15):
            results = await asyncio.gather(
                stores[0].record_events(forward),
                stores[1].record_events(backward),
                stores[2].record_events(forward[::2] + backward[::2]),
            )
            assert all(o.outcome is Outcome.RECORDED for batch in results for o in batch)
        board, _ = await stores[0].standings_page(10, 0)
        assert sorted(s.score for s in board) == [15 * 3] * 6
    finally:
        for opened in stores:
            await opened.close()


async def test_delete_racing_with_events(database_url: str) -> None:
    """A user deleted while batches for them are in flight ends with no score row."""
    await run_migrations(database_url)
    one, two = await SqlStore.open(database_url), await SqlStore.open(database_url)
    try:
        for n in range(10):
            user, other = await make_users(one, f"gone{n}", f"stays{n}")
            batch = [cmd(user, 1), cmd(other, 1)]
            results = await asyncio.gather(
                one.record_events(batch),
                two.delete_user(user.user_id),
                two.record_events(batch),
                one.record_events(batch),
            )
            assert results[1] is True
            assert await one.standing_of(user.user_id) is None
            standing = await one.standing_of(other.user_id)
            assert standing is not None and standing[0].score == 3
        assert len(await all_standings(one)) == 10
    finally:
        await one.close()
        await two.close()


# -- failures ----------------------------------------------------------------------------------
class BlackHoleProxy:
    """TCP proxy to a server; `black_hole()` makes it swallow all traffic, like a dead link."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.dark = False
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    def black_hole(self, dark: bool = True) -> None:
        self.dark = dark

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.dark:  # accept, then never answer
            await reader.read()
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        pipes = [self._pipe(reader, up_writer), self._pipe(up_reader, writer)]
        tasks = [asyncio.create_task(p) for p in pipes]
        self._tasks.update(tasks)
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for w in (writer, up_writer):
            w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                if not self.dark:
                    writer.write(data)
                    await writer.drain()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._server is not None:
            self._server.close()


async def test_black_holed_postgres_is_unavailable_within_the_timeout(fresh_pg_url: str) -> None:
    await run_migrations(fresh_pg_url)
    parts = urlsplit(fresh_pg_url)
    proxy = BlackHoleProxy(parts.port or 5432)
    port = await proxy.start()
    url = fresh_pg_url.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{port}")
    store = await SqlStore.open(url, timeout=1.0)
    try:
        (user,) = await make_users(store, "alice")
        await store.ping()
        proxy.black_hole()
        for call in (store.ping, lambda: store.record_events([cmd(user)])):
            started = time.monotonic()
            with pytest.raises(ServiceUnavailable):
                await call()
            assert time.monotonic() - started < 2.0
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable):
            await all_standings(store)
        assert time.monotonic() - started < 2.0
        proxy.black_hole(False)
        await store.ping()  # recovers once the link is back
        assert (await store.record_events([cmd(user)]))[0].outcome is Outcome.RECORDED
    finally:
        started = time.monotonic()
        await store.close()
        assert time.monotonic() - started < 2.0
        await proxy.close()


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
async def test_unreachable_database_is_unavailable(kind: str, tmp_path: Path) -> None:
    if kind == "postgresql":
        url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nothing"
    else:
        url = f"sqlite+aiosqlite:///{tmp_path}/no/such/dir/x.db"
    store = await SqlStore.open(url, timeout=1.0)
    try:
        for call in (
            store.ping,
            lambda: store.get_user("x"),
            lambda: store.create_user("x", None, "X"),
            lambda: store.record_events([cmd("x")]),
            lambda: store.standings_page(10, 0),
            lambda: all_standings(store),
            store.count_events,
        ):
            with pytest.raises(ServiceUnavailable):
                await call()
    finally:
        await store.close()
    # aiosqlite stops the worker thread of a failed connect without waiting for it; let those
    # threads finish while the event loop still runs.
    await asyncio.sleep(0.2)


async def test_unmigrated_database_is_unavailable(database_url: str) -> None:
    store = await SqlStore.open(database_url)
    try:
        with pytest.raises(ServiceUnavailable):
            await store.get_user("x")
        await store.ping()  # the server itself answers
    finally:
        await store.close()


@pytest.mark.parametrize("url", ["sqlite+aiosqlite://", "sqlite:///:memory:", "mysql://x@h/db"])
async def test_unsupported_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        await SqlStore.open(url)
