"""Contract tests of the multi-board store: every body runs on SQLite and on PostgreSQL.

Every read of a view is checked against a reference: a plain fold of the events written here
(sum / best by hand, not `domain.boards.fold`), ranked by `domain.ranking.rank_all`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy import event as sa_event

from scoreboard.domain.boards import Board, BoardCatalogue, View, to_us
from scoreboard.domain.ranking import RankedEntry, Standing, rank_all
from scoreboard.store.base import Outcome, ScoreCommand, UserRecord
from scoreboard.store.migrate import run_migrations
from scoreboard.store.schema import board_scores
from scoreboard.store.sql import SqlStore

TOKYO = ZoneInfo("Asia/Tokyo")
NEW_YORK = ZoneInfo("America/New_York")

CUSTOM = BoardCatalogue(
    [
        Board("global", "All time"),
        Board("best_daily", "Best today", "daily", aggregate="best"),
        Board("quests", "Quests", "monthly", actions=frozenset({"QUEST"})),
        Board("regional", "Region week", "weekly", "America/New_York", partition="region"),
        Board("tokyo", "Tokyo day", "daily", "Asia/Tokyo"),
    ]
)


def at(year: int, month: int, day: int, *hms: int, tz: Any = UTC) -> int:
    return to_us(datetime(year, month, day, *hms, tzinfo=tz))


@dataclass(frozen=True)
class Sent:
    """An event as the test knows it: what the reference fold replays."""

    user_id: str
    name: str
    action_type: str
    points: int
    region: str | None
    at_us: int


class Log:
    """The events a test recorded, and the reference fold of them."""

    def __init__(self, catalogue: BoardCatalogue) -> None:
        self.catalogue = catalogue
        self.sent: list[Sent] = []
        self.regions: dict[str, str | None] = {}
        self.gone: set[str] = set()

    async def record(
        self,
        store: SqlStore,
        user: UserRecord,
        points: int,
        at_us: int,
        action_type: str = "TASK_COMPLETED",
    ) -> Any:
        command = ScoreCommand(user.user_id, action_type, points, at_us=at_us)
        (result,) = await store.record_events([command])
        assert result.outcome is Outcome.RECORDED
        region = self.regions.get(user.user_id, user.region)
        self.sent.append(Sent(user.user_id, user.display_name, action_type, points, region, at_us))
        return result.event

    def views(self) -> dict[View, list[RankedEntry]]:
        rows: dict[View, dict[str, list[int]]] = {}
        names = {}
        for e in self.sent:
            if e.user_id in self.gone:
                continue
            names[e.user_id] = e.name
            for board in self.catalogue:
                if board.actions is not None and e.action_type not in board.actions:
                    continue
                if board.partition and not e.region:
                    continue
                region = e.region or "" if board.partition else ""
                view = View(board.board_id, board.period_id_at(e.at_us), region)
                held = rows.setdefault(view, {}).get(e.user_id)
                if held is None:
                    rows[view][e.user_id] = [e.points, e.at_us]
                elif board.aggregate == "sum" and e.points:
                    held[0], held[1] = held[0] + e.points, e.at_us
                elif board.aggregate == "best" and e.points > held[0]:
                    held[0], held[1] = e.points, e.at_us
        return {
            view: rank_all([Standing(u, names[u], s, t) for u, (s, t) in users.items()])
            for view, users in rows.items()
        }


def ranked(standings: list[Standing]) -> list[RankedEntry]:
    return [RankedEntry(i + 1, s.user_id, s.display_name, s.score) for i, s in enumerate(standings)]


async def assert_views_match(store: SqlStore, log: Log) -> None:
    expected = log.views()
    for view, entries in expected.items():
        page, total = await store.view_page(view, 1000, 0)
        assert (ranked(page), total) == (entries, len(entries)), view
        walked = [s async for chunk in store.iter_view_standings(view, 2) for s in chunk]
        assert walked == page
        for entry in entries:
            found = await store.view_standing_of(view, entry.user_id)
            assert found is not None and (found[0].score, found[1]) == (entry.score, entry.rank)
    users = {e.user_id for e in log.sent} - log.gone
    for user_id in users:
        mine = [v for v in expected if any(e.user_id == user_id for e in expected[v])]
        assert set(await store.views_of_user(user_id)) == set(mine)


async def all_rows(store: SqlStore) -> list[tuple[Any, ...]]:
    """Every board row, but the time it was written."""
    t = board_scores
    columns = [c for c in t.c if c.name != "updated_at"]
    async with store._engines.read.connect() as conn:
        result = await conn.execute(sa.select(*columns).order_by(*t.primary_key.columns))
        return [tuple(row) for row in result]


async def make_user(store: SqlStore, name: str, region: str | None = None) -> UserRecord:
    return await store.create_user(name, None, name.title(), region=region)


# -- default boards ------------------------------------------------------------------------
async def test_default_boards_and_the_201_boards(store: SqlStore) -> None:
    alice, bob = await make_user(store, "alice"), await make_user(store, "bob")
    log = Log(BoardCatalogue.default())
    monday = at(2026, 11, 30, 12)  # ISO week 2026-W49
    first = await log.record(store, alice, 10, monday)
    assert [(b.view, b.standing.score, b.version) for b in first.boards] == [
        (View("global", "all"), 10, 1),
        (View("daily", "2026-11-30"), 10, 1),
        (View("weekly", "2026-W49"), 10, 1),
        (View("monthly", "2026-11"), 10, 1),
    ]
    assert first.boards[0].standing == first.standing() and first.boards[0].version == 1
    await log.record(store, bob, 25, monday + 1)
    # Tuesday, December: a new day and month, the same week.
    third = await log.record(store, alice, 5, at(2026, 12, 1, 0, 0, 0))
    assert [(b.view, b.standing.score, b.version) for b in third.boards] == [
        (View("global", "all"), 15, 2),
        (View("daily", "2026-12-01"), 5, 1),
        (View("weekly", "2026-W49"), 15, 2),
        (View("monthly", "2026-12"), 5, 1),
    ]
    assert all(b.standing.reached_at_us == at(2026, 12, 1) for b in third.boards)
    await assert_views_match(store, log)
    # The total's view is user_scores itself.
    assert await store.view_page(View("global", "all"), 10, 0) == await store.standings_page(10, 0)
    assert await store.view_page(View("daily", "2026-12-02"), 10, 0) == ([], 0)


# -- a custom catalogue --------------------------------------------------------------------
@pytest.mark.parametrize("boards", [CUSTOM])
async def test_custom_boards_follow_a_reference_fold(store: SqlStore) -> None:
    log = Log(CUSTOM)
    alice = await make_user(store, "alice", "eu")
    bob = await make_user(store, "bob", "us")
    carol = await make_user(store, "carol")  # no region: on no region board
    last_tokyo_instant = at(2026, 12, 4, 23, 59, 59, 999999, tz=TOKYO)
    await log.record(store, alice, 7, last_tokyo_instant)
    await log.record(store, alice, 3, last_tokyo_instant + 1)  # Tokyo's next day
    await log.record(store, bob, 5, last_tokyo_instant, "QUEST")
    await log.record(store, carol, 9, last_tokyo_instant, "QUEST")
    # Alice moves region: her next points count in the new one, the earlier stay.
    await store.update_profile(alice.user_id, region="us")
    log.regions[alice.user_id] = "us"
    event = await log.record(store, alice, 2, last_tokyo_instant + 2)
    by_board = {b.view.board_id: b for b in event.boards}
    assert by_board["regional"].view.region == "us"
    # best: 2 does not beat the 7 of this UTC day: the row and its version stay.
    assert by_board["best_daily"].standing.score == 7 and by_board["best_daily"].version == 1
    assert by_board["tokyo"].view.period_id == "2026-12-05"
    assert "quests" not in by_board  # not a QUEST
    # New York's week ends Sunday 24:00 local: Monday 04:59 UTC is still the week before there.
    await log.record(store, bob, 4, at(2026, 12, 6, 23, 59, 59, 999999, tz=NEW_YORK))
    await log.record(store, bob, 6, at(2026, 12, 7, 0, 0, 0, tz=NEW_YORK))
    await log.record(store, carol, 0, at(2026, 12, 7, 1))
    views = log.views()
    assert (
        View("regional", "2026-W49", "eu") in views and View("regional", "2026-W50", "us") in views
    )
    assert View("tokyo", "2026-12-04") in views and View("tokyo", "2026-12-05") in views
    await assert_views_match(store, log)


@pytest.mark.parametrize("boards", [CUSTOM])
async def test_rebuild_reproduces_the_live_rows(store: SqlStore) -> None:
    log = Log(CUSTOM)
    people = [await make_user(store, f"u{i}", ["eu", "us", None][i % 3]) for i in range(6)]
    start = at(2026, 11, 28, 22)
    for n in range(60):
        user = people[n * 7 % 6]
        action = "QUEST" if n % 4 == 0 else "TASK_COMPLETED"
        await log.record(store, user, (n * 13) % 17 - 3, start + n * 3_600_000_000, action)
        if n == 30:
            await store.update_profile(people[2].user_id, region="eu")
            log.regions[people[2].user_id] = "eu"
    live = await all_rows(store)
    assert len(live) > 50
    written = 0
    for board in CUSTOM:
        written += await store.rebuild_board(board.board_id)
    assert written == len(live)
    assert await all_rows(store) == live
    await assert_views_match(store, log)


async def test_delete_user_leaves_every_view(store: SqlStore) -> None:
    log = Log(BoardCatalogue.default())
    alice, bob = await make_user(store, "alice"), await make_user(store, "bob")
    await log.record(store, alice, 5, at(2026, 12, 1, 10))
    await log.record(store, bob, 3, at(2026, 12, 1, 11))
    assert len(await store.views_of_user(alice.user_id)) == 4
    assert await store.delete_user(alice.user_id)
    log.gone.add(alice.user_id)
    assert await store.views_of_user(alice.user_id) == []
    assert all(row[3] != alice.user_id for row in await all_rows(store))
    assert await store.view_standing_of(View("daily", "2026-12-01"), alice.user_id) is None
    await assert_views_match(store, log)
    await store.rebuild_board("daily")  # the log keeps her events; the rebuild leaves them out
    await assert_views_match(store, log)


async def test_standings_of_some_users(store: SqlStore) -> None:
    log = Log(BoardCatalogue.default())
    people = [await make_user(store, f"p{i}") for i in range(5)]
    for i, person in enumerate(people):
        await log.record(store, person, 10 * i, at(2026, 12, 1, 10, i))
    await store.delete_user(people[3].user_id)
    view = View("daily", "2026-12-01")
    some = [people[0].user_id, people[3].user_id, people[4].user_id, "0" * 16]
    found = await store.view_standings_of(view, some)
    assert [s.user_id for s in found] == [people[4].user_id, people[0].user_id]
    total = await store.view_standings_of(View("global", "all"), some)
    assert [s.user_id for s in total] == [people[4].user_id, people[0].user_id]
    assert await store.view_standings_of(view, []) == []


async def test_ranks_of_some_users_are_each_ones_rank(store: SqlStore) -> None:
    """`view_ranks_of` (a batch's ranks while the index cannot tell): the rank
    `view_standing_of` gives each one, the deleted, the banned and the unknown left out."""
    log = Log(BoardCatalogue.default())
    people = [await make_user(store, f"r{i}") for i in range(6)]
    for i, person in enumerate(people):
        await log.record(store, person, 1 + 10 * (i % 3), at(2026, 12, 1, 10, i))  # ties
    await store.delete_user(people[3].user_id)
    await store.set_status(people[5].user_id, "banned")
    some = [p.user_id for p in people] + ["0" * 16]
    for view in (View("daily", "2026-12-01"), View("global", "all")):
        found = await store.view_ranks_of(view, some)
        expected = {}
        for person in people:
            standing = await store.view_standing_of(view, person.user_id)
            if standing is not None:
                expected[person.user_id] = standing[1]
        assert found == expected
        assert sorted(found.values()) == [1, 2, 3, 4]  # 6 users, 2 off the board
    assert await store.view_ranks_of(View("daily", "2026-12-01"), []) == {}


# -- backfill ------------------------------------------------------------------------------
async def test_backfill_fills_a_board_added_later(database_url: str) -> None:
    await run_migrations(database_url)
    log = Log(BoardCatalogue.default())
    first = await SqlStore.open(database_url)
    try:
        assert await first.backfill_boards() == ["daily", "weekly", "monthly"]  # empty log
        assert await first.backfill_boards() == []
        alice, bob = await make_user(first, "alice", "eu"), await make_user(first, "bob", "us")
        for n in range(12):  # past months
            await log.record(first, [alice, bob][n % 2], n + 1, at(2026, 1 + n, 10, 12))
    finally:
        await first.close()
    added = BoardCatalogue(
        [
            *BoardCatalogue.default(),
            Board("best_region", window="monthly", aggregate="best", partition="region"),
        ]
    )
    log.catalogue = added
    changed_daily = [
        b if b.board_id != "daily" else Board("daily", timezone="Asia/Tokyo", window="daily")
        for b in added
    ]
    second = await SqlStore.open(database_url, boards=added)
    try:
        assert await second.backfill_boards() == ["best_region"]
        await assert_views_match(second, log)
        assert await second.view_page(View("best_region", "2026-03", "eu"), 10, 0) == (
            [Standing(alice.user_id, "Alice", 3, at(2026, 3, 10, 12))],
            1,
        )
    finally:
        await second.close()
    third = await SqlStore.open(database_url, boards=BoardCatalogue(changed_daily))
    try:
        assert await third.backfill_boards() == ["daily"]  # its definition changed
    finally:
        await third.close()
    fourth = await SqlStore.open(database_url)  # best_region removed: its rows go
    try:
        assert await fourth.backfill_boards() == ["daily"]  # back to UTC
        assert {row[0] for row in await all_rows(fourth)} == {"daily", "weekly", "monthly"}
    finally:
        await fourth.close()


async def test_concurrent_backfills_rebuild_once(database_url: str) -> None:
    await run_migrations(database_url)
    stores = [await SqlStore.open(database_url) for _ in range(3)]
    try:
        user = await make_user(stores[0], "alice")
        await stores[0].record_events([ScoreCommand(user.user_id, "T", 5, at_us=at(2026, 5, 1))])
        rebuilt = await asyncio.gather(*(s.backfill_boards() for s in stores))
        done = [board for ids in rebuilt for board in ids]
        assert sorted(done) == ["daily", "monthly", "weekly"]
        # A first start on a log written before the boards fills them (the batch above wrote
        # its rows live too: the rebuild replaced them with the same).
        page = await stores[1].view_page(View("monthly", "2026-05"), 10, 0)
        assert page == ([Standing(user.user_id, "Alice", 5, at(2026, 5, 1))], 1)
    finally:
        for s in stores:
            await s.close()


async def test_a_rebuild_does_not_interleave_with_batches(store: SqlStore) -> None:
    log = Log(BoardCatalogue.default())
    people = [await make_user(store, f"w{i}") for i in range(4)]

    async def writer(user: UserRecord) -> None:
        for n in range(15):
            await log.record(store, user, n + 1, at(2026, 12, 1, 0, 0, n))

    rebuilds = [store.rebuild_board(b) for b in ("daily", "weekly", "monthly", "daily")]
    await asyncio.gather(*(writer(u) for u in people), *rebuilds)
    await assert_views_match(store, log)


# -- cost ------------------------------------------------------------------------------------
@contextlib.contextmanager
def statements(store: SqlStore) -> Iterator[list[str]]:
    """The SQL statements the store's batch engine sends while the block runs."""
    writer = store._engines.batch_writer
    engine = writer._engine if writer is not None else store._engines.write.sync_engine
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    sa_event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)


async def test_a_batch_costs_statements_not_events(store: SqlStore) -> None:
    people = [await make_user(store, f"s{i:02d}") for i in range(50)]
    # What the service does at start-up; otherwise the first batch of a process in a month
    # looks for its partition first (store/sql_partitions.py), once, not per batch.
    await store.ensure_partitions()
    day = at(2026, 12, 1, 9)

    async def cost(users: list[UserRecord], points: int) -> int:
        commands = [
            ScoreCommand(u.user_id, "T", points, at_us=day + i) for i, u in enumerate(users)
        ]
        with statements(store) as seen:
            results = await store.record_events(commands)
        assert {r.outcome for r in results} == {Outcome.RECORDED}
        assert all(len(r.event.boards) == 4 for r in results if r.event is not None)
        return len(seen)

    new_rows = [await cost(people[:1], 1), await cost(people[1:], 1)]
    updates = [await cost(people[:1], 2), await cost(people, 2)]
    assert new_rows[0] == new_rows[1] == updates[0] == updates[1] <= 8
