"""Boards over the API (API.md section 5): the catalogue, periods, regions, `best`, action
filters, friends, and the 201 `boards` list; on every backend. The clock is the test's."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.api.clock import FakeClock
from tests.api.conftest import Api

BOARDS = {
    "boards": [
        {"board_id": "global", "title": "All time"},
        {"board_id": "daily", "window": "daily"},
        {"board_id": "weekly_region", "window": "weekly", "partition": "region"},
        {
            "board_id": "quiz_best",
            "window": "monthly",
            "aggregate": "best",
            "actions": ["ACHIEVEMENT_UNLOCKED", "level_complete"],
            "timezone": "Europe/Paris",
        },
    ]
}


def boards_file(tmp_path: Path, data: dict[str, Any] = BOARDS) -> Path:
    path = tmp_path / "boards.json"
    path.write_text(json.dumps(data))
    return path


async def board(api: Api, **params: Any) -> dict[str, Any]:
    r = await api.client.get("/api/v1/leaderboard", params={"limit": 100, **params})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def scores(body: dict[str, Any]) -> list[tuple[str, int]]:
    return [(item["user_id"], item["score"]) for item in body["items"]]


async def test_the_default_catalogue(database_url: str, api_factory: Callable[..., Any]) -> None:
    clock = FakeClock(datetime(2026, 12, 2, 12, tzinfo=UTC))
    async with api_factory(database_url, clock=clock) as api:
        r = await api.client.get("/api/v1/boards")
        assert r.status_code == 200
        listed = {b["board_id"]: b for b in r.json()["boards"]}
        assert list(listed) == ["global", "daily", "weekly", "monthly"]
        assert listed["weekly"]["period"] == {
            "id": "2026-W49",
            "starts_at": "2026-11-30T00:00:00.000Z",
            "ends_at": "2026-12-07T00:00:00.000Z",
        }
        assert listed["global"]["period"] == {"id": "all", "starts_at": None, "ends_at": None}
        assert {b["aggregate"] for b in listed.values()} == {"sum"}

        user, headers = await api.user()
        r = await api.score(headers, "TASK_COMPLETED")
        assert r.status_code == 201, r.text
        assert r.json()["boards"] == [
            {"scope": "global", "period": "all", "score": 10, "rank": 1},
            {"scope": "daily", "period": "2026-12-02", "score": 10, "rank": 1},
            {"scope": "weekly", "period": "2026-W49", "score": 10, "rank": 1},
            {"scope": "monthly", "period": "2026-12", "score": 10, "rank": 1},
        ]
        weekly = await board(api, scope="weekly")
        assert weekly["scope"] == "weekly" and weekly["period"]["id"] == "2026-W49"
        assert weekly["next_reset_at"] == "2026-12-07T00:00:00.000Z"
        assert scores(weekly) == [(user, 10)]
        glob = await board(api)
        assert glob["period"]["id"] == "all" and glob["next_reset_at"] is None
        me = await api.client.get("/api/v1/leaderboard/me?scope=daily", headers=headers)
        assert me.status_code == 200
        assert me.json()["scope"] == "daily" and me.json()["period"]["id"] == "2026-12-02"
        assert me.json()["rank"] == 1


async def test_a_day_ends_at_midnight_to_the_microsecond(
    database_url: str, api_factory: Callable[..., Any]
) -> None:
    clock = FakeClock(datetime(2026, 12, 1, 23, 59, 59, 999999, tzinfo=UTC))
    async with api_factory(database_url, clock=clock) as api:
        late, late_h = await api.user()
        early, early_h = await api.user()
        assert (await api.score(late_h)).json()["boards"][1]["period"] == "2026-12-01"
        clock.set(datetime(2026, 12, 2, tzinfo=UTC))
        assert (await api.score(early_h)).json()["boards"][1]["period"] == "2026-12-02"

        today = await board(api, scope="daily")
        assert today["period"]["id"] == "2026-12-02" and scores(today) == [(early, 10)]
        yesterday = await board(api, scope="daily", period="previous")
        assert yesterday["period"]["id"] == "2026-12-01" and scores(yesterday) == [(late, 10)]
        assert scores(await board(api, scope="daily", period="2026-12-01")) == [(late, 10)]
        week = await board(api, scope="weekly")
        assert {u for u, _ in scores(week)} == {late, early}  # one ISO week
        empty = await board(api, scope="daily", period="2026-06-01")  # within the retention
        assert empty["total"] == 0 and empty["items"] == []
        for bad in ("2026-13-01", "2026-W49", "tomorrow", "x" * 20):
            r = await api.client.get(
                "/api/v1/leaderboard", params={"scope": "daily", "period": bad}
            )
            assert r.status_code == 400, (bad, r.text)
            assert r.json()["error"]["code"] == "VALIDATION_FAILED"
        r = await api.client.get("/api/v1/leaderboard", params={"scope": "nope"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_SCOPE"
        r = await api.client.get("/api/v1/leaderboard", params={"period": "previous"})
        assert r.status_code == 400  # an all-time board has no previous period
        # A page past the top of an older period, and /me on it, come from SQL alike.
        clock.set(datetime(2026, 12, 9, tzinfo=UTC))
        old = await board(api, scope="daily", period="2026-12-01", offset=0)
        assert scores(old) == [(late, 10)]
        me = await api.client.get(
            "/api/v1/leaderboard/me",
            params={"scope": "daily", "period": "2026-12-01"},
            headers=late_h,
        )
        assert me.json()["rank"] == 1 and me.json()["score"] == 10


async def test_regions_best_and_action_filters(
    database_url: str, api_factory: Callable[..., Any], tmp_path: Path
) -> None:
    clock = FakeClock(datetime(2026, 12, 2, 12, tzinfo=UTC))
    async with api_factory(database_url, clock=clock, boards_file=boards_file(tmp_path)) as api:
        eu, eu_h = await api.user()
        us, us_h = await api.user()
        _, nowhere_h = await api.user()
        for headers, region in ((eu_h, "eu"), (us_h, "us")):
            r = await api.client.patch("/api/v1/users/me", json={"region": region}, headers=headers)
            assert r.status_code == 200, r.text
        await api.score(eu_h, "TASK_COMPLETED")
        await api.score(us_h, "TASK_COMPLETED")
        r = await api.score(nowhere_h, "TASK_COMPLETED")
        assert [b["scope"] for b in r.json()["boards"]] == ["global", "daily"]  # no region
        # eu moves to us: later points count in us, earlier ones stay in eu.
        await api.client.patch("/api/v1/users/me", json={"region": "us"}, headers=eu_h)
        await api.score(eu_h, "ACHIEVEMENT_UNLOCKED")
        assert scores(await board(api, scope="weekly_region", region="eu")) == [(eu, 10)]
        assert scores(await board(api, scope="weekly_region", region="us")) == [(eu, 100), (us, 10)]
        r = await api.client.get("/api/v1/leaderboard", params={"scope": "weekly_region"})
        assert r.status_code == 400 and r.json()["error"]["details"][0]["field"] == "region"
        r = await api.client.get("/api/v1/leaderboard", params={"scope": "daily", "region": "eu"})
        assert r.status_code == 400

        # best: the single highest event of the counted actions only.
        clock.advance(1)  # after eu's 100
        await api.score(us_h, "level_complete")  # 100
        await api.score(us_h, "level_complete")  # 100 again: not better, the first time stays
        await api.score(us_h, "TASK_COMPLETED")  # not counted there
        best = await board(api, scope="quiz_best")
        assert scores(best) == [(eu, 100), (us, 100)]  # eu reached 100 first
        assert best["period"]["id"] == "2026-12" and best["next_reset_at"] == (
            "2026-12-31T23:00:00.000Z"  # midnight in Paris
        )


async def test_friends(database_url: str, api_factory: Callable[..., Any]) -> None:
    async with api_factory(database_url) as api:
        me, me_h = await api.user()
        friend, friend_h = await api.user()
        _, stranger_h = await api.user()
        for path_user, status in ((friend, 204), (friend, 204), ("no-such-user", 404), (me, 400)):
            r = await api.client.put(f"/api/v1/users/me/friends/{path_user}", headers=me_h)
            assert r.status_code == status, r.text
        r = await api.client.get("/api/v1/users/me/friends", headers=me_h)
        assert [f["user_id"] for f in r.json()["friends"]] == [friend]
        assert (await api.client.get("/api/v1/users/me/friends")).status_code == 401

        await api.score(stranger_h, "ACHIEVEMENT_UNLOCKED")
        await api.score(me_h, "TASK_COMPLETED")
        r = await api.client.get("/api/v1/leaderboard/friends?scope=weekly", headers=me_h)
        assert r.status_code == 200, r.text
        assert [(i["rank"], i["user_id"]) for i in r.json()["items"]] == [(1, me)]  # no score yet
        await api.score(friend_h, "TASK_COMPLETED")
        await api.score(friend_h, "TASK_COMPLETED")
        r = await api.client.get("/api/v1/leaderboard/friends?scope=weekly", headers=me_h)
        body = r.json()
        assert body["scope"] == "weekly" and body["period"]["id"] and body["total"] == 2
        assert [(i["rank"], i["user_id"], i["score"]) for i in body["items"]] == [
            (1, friend, 20),
            (2, me, 10),
        ]  # the stranger, first on the board, is not among them
        assert (await api.client.get("/api/v1/leaderboard/friends")).status_code == 401
        r = await api.client.delete(f"/api/v1/users/me/friends/{friend}", headers=me_h)
        assert r.status_code == 204
        r = await api.client.delete(f"/api/v1/users/me/friends/{friend}", headers=me_h)
        assert r.status_code == 204
        r = await api.client.get("/api/v1/users/me/friends", headers=me_h)
        assert r.json()["friends"] == []


def test_a_bad_boards_file_stops_start_up(tmp_path: Path) -> None:
    from scoreboard.config import Settings

    path = boards_file(tmp_path, {"boards": [{"board_id": "w", "window": "hourly"}]})
    with pytest.raises(ValueError, match="board 'w': field 'window'"):
        Settings(_env_file=None, boards_file=path)  # type: ignore[call-arg]


async def test_a_board_added_between_two_starts_shows_the_earlier_events(
    database_url: str, api_factory: Callable[..., Any], tmp_path: Path
) -> None:
    first = {"boards": [b for b in BOARDS["boards"] if b["board_id"] != "quiz_best"]}
    clock = FakeClock(datetime(2026, 11, 20, 12, tzinfo=UTC))
    async with api_factory(
        database_url, clock=clock, boards_file=boards_file(tmp_path, first)
    ) as api:
        user, headers = await api.user()
        await api.score(headers, "level_complete")
        clock.set(datetime(2026, 12, 2, 12, tzinfo=UTC))
        await api.score(headers, "ACHIEVEMENT_UNLOCKED")
        r = await api.client.get("/api/v1/leaderboard", params={"scope": "quiz_best"})
        assert r.status_code == 400  # not a board yet
    later = tmp_path / "later"
    later.mkdir()
    async with api_factory(database_url, clock=clock, boards_file=boards_file(later)) as api:
        assert scores(await board(api, scope="quiz_best")) == [(user, 100)]
        november = await board(api, scope="quiz_best", period="previous")
        assert november["period"]["id"] == "2026-11" and scores(november) == [(user, 100)]


async def test_past_periods_are_kept_for_the_retention_then_pruned(
    database_url: str, api_factory: Callable[..., Any]
) -> None:
    clock = FakeClock(datetime(2026, 12, 2, 12, tzinfo=UTC))
    async with api_factory(database_url, clock=clock, period_retention_days=3) as api:
        user, headers = await api.user()
        await api.score(headers)
        clock.set(datetime(2026, 12, 5, 23, tzinfo=UTC))  # 2026-12-02 ended 2 days 23 h ago
        assert scores(await board(api, scope="daily", period="2026-12-02")) == [(user, 10)]
        assert await api.services.board.prune() == 0
        clock.set(datetime(2026, 12, 6, 0, 0, 1, tzinfo=UTC))  # more than 3 days ago now
        r = await api.client.get(
            "/api/v1/leaderboard", params={"scope": "daily", "period": "2026-12-02"}
        )
        assert r.status_code == 400 and "kept 3 days" in r.json()["error"]["message"]
        assert await api.services.board.prune() == 1  # the daily row; weekly and monthly stay
        assert scores(await board(api, scope="weekly", period="2026-W49")) == [(user, 10)]
        assert scores(await board(api, scope="monthly")) == [(user, 10)]
