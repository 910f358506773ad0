"""The store's anomaly-rule tables (`FlagStore`, store/sql_flags.py) on SQLite and
PostgreSQL: the tallies, insert-if-absent flags with their webhook in the same transaction
(several stores writing at once, as several processes would), resolution, pruning."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from scoreboard.domain.rules import Trip
from scoreboard.domain.times import utcnow
from scoreboard.store.base import AuditEntry
from scoreboard.store.flags import Activity, StatusChange, Tally
from scoreboard.store.sql import SqlStore

S = 1_000_000
T0 = 1_800_000_000 * S


async def test_tallies_count_the_sliding_minute_and_the_hour(store: SqlStore) -> None:
    ua = (await store.create_user("alice", None, "Alice")).user_id
    ub = (await store.create_user("bob", None, "Bob")).user_id
    first = await store.tally_activity(
        [Activity(ua, T0, 10, "h1"), Activity(ua, T0 + 500_000, 5, "h1"), Activity(ub, T0, 7, "h1")]
    )
    assert first == [Tally(15, 2), Tally(15, 2), Tally(7, 2)]
    # 59 s later the minute still holds T0's second; 60 s later it does not.
    assert await store.tally_activity([Activity(ua, T0 + 59 * S, 1, None)]) == [Tally(16, None)]
    assert await store.tally_activity([Activity(ua, T0 + 60 * S, 1, "h2")]) == [Tally(2, 1)]
    # The hour: b last scored at "h1" at T0; one hour later b no longer counts there.
    later = T0 + 3600 * S
    assert await store.tally_activity([Activity(ua, later, 1, "h1")]) == [Tally(1, 1)]
    # T0's two points rows (a, b) and b at h1 go.
    assert await store.prune_rule_activity(T0 + 30 * S) == 3
    assert await store.tally_activity([Activity(ub, later, 0, "h1")]) == [Tally(0, 2)]


async def test_flags_are_written_once_with_their_webhook(
    store: SqlStore, database_url: str
) -> None:
    user = await store.create_user("alice", None, "Alice")
    trip = Trip(user.user_id, "max_points_per_minute", "2026-12-02T12:34Z", {"points": 700})
    others = [await SqlStore.open(database_url) for _ in range(3)]
    try:
        written = await asyncio.gather(
            *(s.add_flags([trip], webhook_type="user.flagged") for s in [store, *others])
        )
    finally:
        for other in others:
            await other.close()
    (flag,) = [f for batch in written for f in batch]
    assert (flag.user_id, flag.rule, flag.window_id, flag.status) == (
        user.user_id,
        "max_points_per_minute",
        "2026-12-02T12:34Z",
        "open",
    )
    assert flag.detail == {"points": 700}
    now = utcnow()
    hooks = await store.claim_webhooks(now, now + timedelta(seconds=60), 10)
    assert [(h.type, h.data["flag_id"], h.data["user_id"]) for h in hooks] == [
        ("user.flagged", flag.flag_id, user.user_id)
    ]
    assert await store.add_flags([trip]) == []  # the window has its flag
    other_window = Trip(user.user_id, trip.rule, "2026-12-02T12:35Z", {})
    assert [f.window_id for f in await store.add_flags([other_window])] == [other_window.window]
    assert await store.open_flags_of(user.user_id) == 2
    assert [f.flag_id for f in await store.flags_page("open", 10)][1] == flag.flag_id
    assert [f.flag_id for f in await store.flags_page(None, 10, before=flag.flag_id + 1)] == [
        flag.flag_id
    ]


async def test_a_resolution_and_its_status_change_are_one_transaction(store: SqlStore) -> None:
    user = await store.create_user("bob", None, "Bob")
    (flag,) = await store.add_flags([Trip(user.user_id, "min_action_duration", "w", {})])
    audit = AuditEntry("admin1", "resolve_flag", str(flag.flag_id), "bot")
    change = StatusChange(user.user_id, "banned", AuditEntry("admin1", "ban", user.user_id, "bot"))
    done = await store.resolve_flag(flag.flag_id, "banned", audit=audit, change=change)
    assert done is not None
    assert (done.status, done.resolution, done.resolved_by, done.reason) == (
        "resolved",
        "banned",
        "admin1",
        "bot",
    )
    assert done.resolved_at is not None
    banned = await store.get_user(user.user_id)
    assert banned is not None and banned.status == "banned"
    trail = [(e.action, e.target) for e in await store.audit_page(10)]
    assert trail == [("resolve_flag", str(flag.flag_id)), ("ban", user.user_id)]
    # Resolved already: nothing changes, nothing is audited.
    again = await store.resolve_flag(flag.flag_id, "dismissed", audit=audit)
    assert again is None and len(await store.audit_page(10)) == 2
    assert await store.get_flag(flag.flag_id) == done
    assert await store.open_flags_of(user.user_id) == 0
    # A status change only from `expect`: the banned user is not quarantined.
    assert await store.set_status(user.user_id, "quarantined", expect="active") is None
    still = await store.get_user(user.user_id)
    assert still is not None and still.status == "banned"
