"""A client written from specification 003 alone: `GET /api/scores/top`, `GET /api/scores/me`,
`POST /api/score/update` with a Bearer header, and `WS /api/ws/leaderboard` with its snapshot /
update / remove messages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from tests.compat import Served, auth, board, seed003_entries, serve, user
from tests.e2e.client import LiveClient


@pytest.fixture
async def served(database_url: str, tmp_path: Path) -> AsyncIterator[Served]:
    async with serve(database_url, tmp_path) as instance:
        yield instance


class Top:
    """What a 003 client keeps: userId -> entry, rebuilt from the live messages."""

    def __init__(self, live: LiveClient) -> None:
        self.live = live

    def state(self) -> dict[str, dict[str, Any]]:
        return seed003_entries(self.live.messages)

    def scores(self) -> dict[str, int]:
        return {user_id: e["score"] for user_id, e in self.state().items()}

    async def shows(self, expected: dict[str, int]) -> None:
        await self.live.wait_for(lambda _: self.scores() == expected)


async def test_scores_and_live_top(served: Served) -> None:
    http = served.http
    (alice, token), (bob, bob_token), (carol, carol_token) = [
        await user(http, name) for name in ("alice", "bob", "carol")
    ]
    ws = f"{served.ws_url}/api/ws/leaderboard"
    top = Top(await LiveClient.open(ws, additional_headers=auth(token)))
    top2 = Top(await LiveClient.open(f"{ws}?limit=2&token={token}"))  # our `limit` extension
    for client in (top, top2):
        snapshot = await client.live.wait_for(lambda m: m["type"] == "snapshot")
        assert snapshot == {"type": "snapshot", "top": []}

    me = await http.get("/api/scores/me", headers=auth(token))
    assert me.status_code == 200
    assert me.json().items() >= {"userId": alice, "score": 0, "rank": None}.items()
    handle = me.json()["handle"]

    r = await http.post("/api/score/update", headers=auth(token))  # no body, as documented
    assert r.status_code == 200, r.text
    assert r.json().items() >= {"userId": alice, "newScore": 10, "success": True}.items()
    await top.shows({alice: 10})
    update = top.live.messages[-1]
    assert update.items() >= {"type": "update", "userId": alice, "score": 10}.items()

    r = await http.post("/api/score/update", json={"score_increment": 30}, headers=auth(bob_token))
    assert r.json()["newScore"] == 30
    await top2.shows({bob: 30, alice: 10})
    r = await http.post(
        "/api/score/update", json={"score_increment": 20}, headers=auth(carol_token)
    )
    assert r.json()["newScore"] == 20
    await top2.shows({bob: 30, carol: 20})  # alice fell off the top 2
    assert {"type": "remove", "userId": alice} in top2.live.messages
    await top.shows({bob: 30, carol: 20, alice: 10})

    listed = await http.get("/api/scores/top", params={"limit": 10})
    assert listed.status_code == 200
    body = listed.json()
    assert datetime.fromisoformat(body["asOf"])
    assert [(e["userId"], e["score"]) for e in body["top"]] == [(bob, 30), (carol, 20), (alice, 10)]
    assert body["top"][2]["handle"] == handle
    me = (await http.get("/api/scores/me", headers=auth(token))).json()
    assert (me["userId"], me["handle"], me["score"], me["rank"]) == (alice, handle, 10, 3)

    # "User deletes account (remove from leaderboard)".
    deleted = await http.delete("/api/v1/users/me", headers=auth(bob_token))
    assert deleted.status_code == 204
    await top.shows({carol: 20, alice: 10})
    await top2.shows({carol: 20, alice: 10})
    assert {"type": "remove", "userId": bob} in top.live.messages
    canonical = await board(http)
    assert top.scores() == {e["user_id"]: e["score"] for e in canonical}
    for client in (top, top2):
        await client.live.close()


async def test_errors_and_request_ids(served: Served) -> None:
    http = served.http
    _, token = await user(http, "dave")
    unauthorized = {"code": "UNAUTHORIZED"}
    for r in (
        await http.post("/api/score/update"),
        await http.post("/api/score/update", headers=auth("bad")),
        await http.get("/api/scores/me"),
    ):
        assert r.status_code == 401 and r.json()["error"].items() >= unauthorized.items()
        assert r.json()["error"]["message"]
    for bad in ({"score_increment": 1000}, {"score_increment": "x"}, {"points": 5}):
        r = await http.post("/api/score/update", json=bad, headers=auth(token))
        assert r.status_code == 400 and r.json()["error"]["code"] == "VALIDATION_FAILED", bad
    r = await http.get("/api/scores/top", params={"limit": 0})
    assert r.status_code == 400 and r.json()["error"]["code"] == "VALIDATION_FAILED"

    # "Same request ID = same result".
    replies = [
        await http.post("/api/score/update", headers=auth(token) | {"X-Request-Id": "req-1"})
        for _ in range(2)
    ]
    assert [r.json()["newScore"] for r in replies] == [10, 10]
    assert await served.services.store.count_events() == 1


async def test_rate_limit_is_shared_by_every_route(sqlite_url: str, tmp_path: Path) -> None:
    async with serve(sqlite_url, tmp_path, rate_limit_score="4/minute") as served:
        http = served.http
        alice, token = await user(http, "erin")
        accepted = [
            await http.post("/api/score/update", headers=auth(token)),
            await http.post(
                "/api/score/update",
                json={"user_id": alice, "auth_token": token, "score_increment": 1},
            ),
            await http.post("/api/v1/scores/update", json={}, headers=auth(token)),
            await http.post(
                "/api/v1/scores/events", json={"action_type": "DAILY_LOGIN"}, headers=auth(token)
            ),
        ]
        assert [r.status_code for r in accepted] == [200, 200, 200, 201]
        limited = await http.post("/api/score/update", headers=auth(token))
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "RATE_LIMITED"
        assert int(limited.headers["Retry-After"]) >= 1
        other = await http.post("/api/v1/scores/update", json={}, headers=auth(token))
        assert other.status_code == 429 and other.json()["success"] is False
        started = await http.post(f"/users/{alice}/actions", json={}, headers=auth(token))
        assert started.status_code == 201
        action = started.json()["actionId"]
        done = await http.put(
            f"/users/{alice}/actions/{action}", json={"status": "completed"}, headers=auth(token)
        )
        assert done.status_code == 429
        assert await served.services.store.count_events() == 4
