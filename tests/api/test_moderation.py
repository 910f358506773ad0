"""Moderation (API.md section 6), at the service: ban, unban, quarantine, release; every board
follows at once (REST and live); banned writes are refused; a quarantined user still sees
themselves. On every backend. (The admin routes come with the admin role.)"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.api.conftest import Api
from tests.api.test_live_boards import connect, settle, token_of

from scoreboard.domain.errors import AlreadyVoided, ModerationConflict, NotFound, ValidationFailed
from scoreboard.service.moderation import ModerationService


def service(
    api: Api, log: list[tuple[str, str, str, str]], *, webhooks: bool = False
) -> ModerationService:
    async def audit(actor: str, action: str, target: str, reason: str) -> None:
        log.append((actor, action, target, reason))

    store, board = api.services.store, api.services.board
    return ModerationService(store, board, audit, webhooks=webhooks)


async def audited(api: Api) -> list[tuple[str, str, str, str]]:
    """The admin audit log, oldest first (status changes are audited in their own
    transaction, by the store)."""
    page = await api.services.audit.page(100)
    return [(i.actor, i.action, i.target, i.reason) for i in reversed(page.items)]


async def ids(api: Api, **params: Any) -> list[str]:
    r = await api.client.get("/api/v1/leaderboard", params={"limit": 100, **params})
    assert r.status_code == 200, r.text
    return [item["user_id"] for item in r.json()["items"]]


async def test_ban_and_unban_every_board_follows(
    database_url: str, api_factory: Callable[..., Any]
) -> None:
    async with api_factory(database_url) as api:
        log: list[tuple[str, str, str, str]] = []
        moderation = service(api, log, webhooks=True)
        cheater, cheater_h = await api.user()
        honest, honest_h = await api.user()
        await api.score(cheater_h, "ACHIEVEMENT_UNLOCKED")
        await api.score(honest_h, "TASK_COMPLETED")
        async with connect(api, token_of(honest_h), scope="weekly") as (conn, wire):
            await conn.handle(json.dumps({"type": "subscribe", "scope": "global"}))
            view = await moderation.act("admin1", "ban", cheater, "forged scores")
            assert view.user.status == "banned"
            assert all(b.rank is None for b in view.boards) and view.boards
            for scope in ("global", "daily", "weekly", "monthly"):
                assert await ids(api, scope=scope) == [honest], scope
            r = await api.score(cheater_h)
            assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN"
            await settle(api)
            for scope in ("weekly", "global"):
                assert [i["user_id"] for i in wire.boards(scope)[-1]["items"]] == [honest]
            with pytest.raises(ModerationConflict):
                await moderation.act("admin1", "release", cheater, "wrong undo")
            view = await moderation.act("admin1", "unban", cheater, "appeal upheld")
            assert view.user.status == "active"
            for scope in ("global", "daily", "weekly", "monthly"):
                assert await ids(api, scope=scope) == [cheater, honest], scope
            assert (await api.score(cheater_h)).status_code == 201
            await settle(api)
            assert [i["user_id"] for i in wire.boards("weekly")[-1]["items"]] == [
                cheater,
                honest,
            ]
        trail = await audited(api)
        assert [entry[1] for entry in trail] == ["ban", "unban"] and log == []
        assert trail[0] == ("admin1", "ban", cheater, "forged scores")
        # The ban's webhook was written with it (the outbox; delivery: tests/service).
        now = datetime.now(UTC)
        due = await api.services.store.claim_webhooks(now, now + timedelta(seconds=60), 10)
        assert [(w.type, w.data["user_id"]) for w in due] == [("user.banned", cheater)]
        with pytest.raises(NotFound):
            await moderation.act("admin1", "ban", "nobody", "x")
        with pytest.raises(ValidationFailed):
            await moderation.act("admin1", "ban", cheater, "")


async def test_a_quarantined_user_is_hidden_but_sees_themselves(
    database_url: str, api_factory: Callable[..., Any]
) -> None:
    async with api_factory(database_url) as api:
        moderation = service(api, [])
        suspect, suspect_h = await api.user()
        other, other_h = await api.user()
        await api.score(other_h, "TASK_COMPLETED")
        await api.score(suspect_h, "ACHIEVEMENT_UNLOCKED")
        await moderation.act("admin1", "quarantine", suspect, "too fast")
        assert await ids(api) == [other]
        assert await ids(api, scope="daily") == [other]
        r = await api.score(suspect_h, "TASK_COMPLETED")  # still accepted, not told
        assert r.status_code == 201, r.text
        assert r.json()["rank"] == 1 and r.json()["new_score"] == 110
        assert {b["rank"] for b in r.json()["boards"]} == {1}
        me = (await api.client.get("/api/v1/leaderboard/me", headers=suspect_h)).json()
        assert (me["score"], me["rank"]) == (110, 1)
        assert [e["user_id"] for e in me["around_me"]] == [suspect]
        assert await ids(api) == [other]  # still hidden from everyone else
        other_me = (await api.client.get("/api/v1/leaderboard/me", headers=other_h)).json()
        assert other_me["rank"] == 1
        await moderation.act("admin1", "release", suspect, "false positive")
        assert await ids(api) == [suspect, other]
        assert await ids(api, scope="monthly") == [suspect, other]
        view = await moderation.view(suspect)
        assert view.user.status == "active"
        assert {b.scope: (b.score, b.rank) for b in view.boards}["global"] == (110, 1)


async def test_a_void_recomputes_every_board_it_counted_on(
    database_url: str, api_factory: Callable[..., Any], tmp_path: Any
) -> None:
    from tests.api.test_boards import boards_file

    async with api_factory(database_url, boards_file=boards_file(tmp_path)) as api:
        log: list[tuple[str, str, str, str]] = []
        moderation = service(api, log)
        user, headers = await api.user()
        other, other_h = await api.user()
        big = (await api.score(headers, "level_complete")).json()  # 100, counts on quiz_best
        await api.score(headers, "TASK_COMPLETED")  # 10
        await api.score(other_h, "ACHIEVEMENT_UNLOCKED")  # 100, quiz_best too
        assert await ids(api) == [user, other]  # 110 vs 100
        event = await moderation.void("admin1", big["event_id"], "forged")
        assert event.points == -100 and event.new_score == 10
        r = await api.client.get("/api/v1/leaderboard", params={"limit": 10})
        assert [(i["user_id"], i["score"]) for i in r.json()["items"]] == [
            (other, 100),
            (user, 10),
        ]
        assert await ids(api, scope="quiz_best") == [other]  # best of the others: none left
        assert await ids(api, scope="daily") == [other, user]
        with pytest.raises(AlreadyVoided):
            await moderation.void("admin1", big["event_id"], "again")
        with pytest.raises(ValidationFailed):
            await moderation.void("admin1", event.event_id, "a void of a void")
        with pytest.raises(NotFound):
            await moderation.void("admin1", 10**9, "nothing")
        assert log[-1] == ("admin1", "void", str(big["event_id"]), "forged")
        # The log was appended to, never changed; a rebuild from it gives the same boards.
        assert await api.services.store.count_events() == 4
        await api.services.store.rebuild_board("quiz_best")
        await api.services.store.rebuild_board("daily")
        await api.services.board.rebuild()
        assert await ids(api, scope="quiz_best") == [other]
        r = await api.client.get("/api/v1/leaderboard", params={"scope": "daily"})
        assert [(i["user_id"], i["score"]) for i in r.json()["items"]] == [
            (other, 100),
            (user, 10),
        ]


async def test_a_quarantined_user_stays_hidden_on_the_periods_after_the_quarantine(
    database_url: str, api_factory: Callable[..., Any]
) -> None:
    """A quarantine tombstones the user on the views they were on; their writes, an
    adjustment and a void afterwards, on views of later periods (no tombstone there), must
    not put them on any public board (found by tests/api/test_moderation_fold.py)."""
    from tests.api.clock import FakeClock
    from tests.api.test_live_boards import settle

    clock = FakeClock()
    async with api_factory(database_url, clock=clock) as api:
        moderation = api.services.moderation
        suspect, suspect_h = await api.user()
        other, other_h = await api.user()
        await api.score(suspect_h)
        await moderation.act("admin1", "quarantine", suspect, "too fast")
        for day in range(3):
            clock.advance(24 * 3600)
            await api.score(other_h)  # the new day's view exists, its index loads
            assert await ids(api, scope="daily") == [other]
            await settle(api)
            r = await api.score(suspect_h, "ACHIEVEMENT_UNLOCKED")
            assert r.status_code == 201, r.text
            await moderation.adjust("admin1", suspect, 7, "bonus")
            if day == 1:
                await moderation.void("admin1", r.json()["event_id"], "forged")
            await settle(api)
            for scope in ("global", "daily", "weekly", "monthly"):
                assert await ids(api, scope=scope) == [other], (day, scope)
        me = await api.client.get(
            "/api/v1/leaderboard/me", params={"scope": "daily"}, headers=suspect_h
        )
        assert (me.json()["score"], me.json()["rank"]) == (107, 1)  # as if visible
        await moderation.act("admin1", "release", suspect, "false positive")
        assert await ids(api, scope="daily") == [suspect, other]
        total = 10 + 3 * 7 + 2 * 100
        r = await api.client.get("/api/v1/leaderboard", params={"limit": 10})
        assert [(i["user_id"], i["score"]) for i in r.json()["items"]] == [
            (suspect, total),
            (other, 30),
        ]
