"""A client written from specification 004 alone: `POST /api/v1/scores/update`,
`GET /api/v1/leaderboard/top10` and `leaderboard_update` messages on `/ws/leaderboard`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.compat import Served, auth, serve_catalogue, user
from tests.e2e.client import LiveClient

# A deployment for 004 clients lists their action types in its catalogue.
CATALOGUE = {
    "default_action_type": "level_complete",
    "actions": [
        {"action_type": "level_complete", "points": 100, "max_increment": 1000},
        {"action_type": "TASK_COMPLETED", "points": 10},
    ],
}
ENTRY_FIELDS = {"rank", "user_id", "username", "score", "avatar_url"}
AVATAR = "https://cdn.example.com/avatars/54321.jpg"


@pytest.fixture
async def served(database_url: str, tmp_path: Path) -> AsyncIterator[Served]:
    async with serve_catalogue(database_url, tmp_path, CATALOGUE) as instance:
        yield instance


def recent_ms(value: Any) -> bool:
    return isinstance(value, int) and abs(value - time.time() * 1000) < 60_000


async def test_update_top10_and_live(served: Served) -> None:
    http = served.http
    (alice, token), (bob, bob_token) = [await user(http, name) for name in ("alice", "bob")]
    profile = await http.patch(
        "/api/v1/users/me", json={"avatar_url": AVATAR, "region": "EU"}, headers=auth(token)
    )
    assert profile.status_code == 200 and profile.json()["avatar_url"] == AVATAR

    live = await LiveClient.open(
        f"{served.ws_url}/ws/leaderboard?format=leaderboard_update", additional_headers=auth(token)
    )
    first = await live.wait_for(lambda m: m["type"] == "leaderboard_update")
    assert first["data"]["leaderboard"] == [] and recent_ms(first["timestamp"])

    async def update(token: str, increment: int) -> dict[str, Any]:
        body = {"action_type": "level_complete", "score_increment": increment}
        r = await http.post("/api/v1/scores/update", json=body, headers=auth(token))
        assert r.status_code == 200, r.text
        reply: dict[str, Any] = r.json()
        assert reply["success"] is True and recent_ms(reply["timestamp"])
        return dict(reply["data"])

    assert await update(token, 100) == {
        "user_id": alice,
        "previous_score": 0,
        "new_score": 100,
        "rank_change": 0,
        "current_rank": 1,
    }
    assert (await update(bob_token, 150))["current_rank"] == 1
    moved = await update(token, 100)
    assert (moved["previous_score"], moved["new_score"]) == (100, 200)
    assert (moved["rank_change"], moved["current_rank"]) == (1, 1)

    r = await http.get("/api/v1/leaderboard/top10")
    assert r.status_code == 200
    top = r.json()
    assert top["success"] is True and recent_ms(top["data"]["last_updated"])
    assert isinstance(top["data"]["cache_ttl"], int)
    leaderboard = top["data"]["leaderboard"]
    assert all(set(entry) == ENTRY_FIELDS for entry in leaderboard)
    assert [(e["rank"], e["user_id"], e["score"]) for e in leaderboard] == [
        (1, alice, 200),
        (2, bob, 150),
    ]
    assert [e["avatar_url"] for e in leaderboard] == [AVATAR, None]
    assert all(isinstance(e["username"], str) and e["username"] for e in leaderboard)

    # Live entries carry the same fields and values as the route, avatars included.
    last = await live.wait_for(lambda m: m["data"]["leaderboard"] == leaderboard)
    assert all(set(entry) == ENTRY_FIELDS for entry in last["data"]["leaderboard"])
    assert recent_ms(last["timestamp"])
    await live.close()


async def test_errors(served: Served) -> None:
    http = served.http
    _, token = await user(http, "carol")
    for headers in ({}, auth("expired.or.forged")):
        r = await http.post("/api/v1/scores/update", json={"score_increment": 5}, headers=headers)
        assert r.status_code == 401
        body = r.json()
        assert body["success"] is False and body["error"]["code"] == "UNAUTHORIZED"
        assert body["error"]["message"]
    for bad in (
        {"action_type": "level_complete", "score_increment": 1001},
        {"action_type": "level_complete", "score_increment": 0},
        {"action_type": "TASK_COMPLETED", "score_increment": 101},
    ):
        r = await http.post("/api/v1/scores/update", json=bad, headers=auth(token))
        assert r.status_code == 400 and r.json()["success"] is False, bad
        assert r.json()["error"]["code"] == "VALIDATION_FAILED"
    r = await http.post(
        "/api/v1/scores/update",
        json={"action_type": "jump", "score_increment": 1},
        headers=auth(token),
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_ACTION_TYPE"
    assert await served.services.store.count_events() == 0
    assert (await http.get("/api/v1/leaderboard/top10")).json()["data"]["leaderboard"] == []


async def test_points_per_minute_are_the_same_whichever_route(
    database_url: str, tmp_path: Path
) -> None:
    """One points budget per user, charged by every scoring route: a client-chosen increment
    cannot reach further than the canonical route's catalogue points."""
    from tests.compat import serve

    async with serve(database_url, tmp_path, rate_limit_points="3000/minute") as served:
        http = served.http
        _, token = await user(http, "budget")
        big = {"action_type": "ACHIEVEMENT_UNLOCKED", "score_increment": 1000}
        codes = [
            (await http.post("/api/v1/scores/update", json=big, headers=auth(token))).status_code
            for _ in range(3)
        ]
        assert codes == [200, 200, 200]
        over = await http.post("/api/v1/scores/update", json=big, headers=auth(token))
        assert over.status_code == 429 and over.json()["success"] is False
        assert over.json()["error"]["code"] == "RATE_LIMITED"
        assert int(over.headers["Retry-After"]) >= 1
        # The same budget on the canonical and the 002/003 routes.
        canonical = {"action_type": "TASK_COMPLETED"}
        r = await http.post("/api/v1/scores/events", json=canonical, headers=auth(token))
        assert r.status_code == 429
        r = await http.post("/api/score/update", json={"score_increment": 1}, headers=auth(token))
        assert r.status_code == 429
        assert await served.services.store.sum_event_points() == 3000
        _, other = await user(http, "budget")  # per user
        r = await http.post("/api/v1/scores/update", json=big, headers=auth(other))
        assert r.status_code == 200
