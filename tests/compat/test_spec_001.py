"""A client written from specification 001 alone: `/auth/login`, `/top-scores`, the action
lifecycle (`POST /users/:userId/actions`, `PUT /users/:userId/actions/:actionId`) and the
`top_scores_update` live messages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from tests.compat import Served, account, auth, serve_catalogue
from tests.e2e.client import LiveClient

CATALOGUE = {
    "default_action_type": "TASK_COMPLETED",
    "actions": [
        {"action_type": "TASK_COMPLETED", "points": 10},
        {"action_type": "QUIZ_PASSED", "points": 25, "min_duration_seconds": 5.0},
        {"action_type": "SPRINT", "points": 30, "max_open_seconds": 0.3},
    ],
}


@pytest.fixture
async def served(database_url: str, tmp_path: Path) -> AsyncIterator[Served]:
    async with serve_catalogue(database_url, tmp_path, CATALOGUE) as instance:
        yield instance


async def login001(http: httpx.AsyncClient, username: str) -> str:
    r = await http.post("/auth/login", json={"username": username, "password": "pass-word-123"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"accessToken", "expiresIn"}
    assert isinstance(body["expiresIn"], int) and body["expiresIn"] > 0
    token: str = body["accessToken"]
    assert token.startswith("ey")
    return token


def rfc3339(value: str) -> datetime:
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value)


async def start(http: httpx.AsyncClient, user_id: str, token: str, **body: object) -> str:
    r = await http.post(
        f"/users/{user_id}/actions", json={"status": "started", **body}, headers=auth(token)
    )
    assert r.status_code == 201, r.text
    action_id: str = r.json()["actionId"]
    return action_id


async def test_login_top_scores_and_lifecycle(served: Served) -> None:
    http = served.http
    alice, alice_name = await account(http, "alice")
    bob, bob_name = await account(http, "bob")
    wrong = await http.post("/auth/login", json={"username": alice_name, "password": "nope-nope"})
    assert wrong.status_code == 401
    token, bob_token = await login001(http, alice_name), await login001(http, bob_name)

    live = await LiveClient.open(
        f"{served.ws_url}/ws/leaderboard?format=top_scores_update&token={token}"
    )
    first = await live.wait_for(lambda m: m["type"] == "top_scores_update")
    assert first["payload"] == [] and rfc3339(first["timestamp"])

    r = await http.post(
        f"/users/{alice}/actions",
        json={"status": "started", "metadata": {"level": 3}},
        headers=auth(token),
    )
    assert r.status_code == 201, r.text
    action = r.json()
    assert action["userId"] == alice and action["status"] == "started"
    assert action["type"] == "TASK_COMPLETED" and action["metadata"] == {"level": 3}
    assert rfc3339(action["startedAt"])
    action_id = action["actionId"]

    # The specification's literal body.
    done = await http.put(
        f"/users/{alice}/actions/{action_id}", json={"started": "completed"}, headers=auth(token)
    )
    assert done.status_code == 200, done.text
    body = done.json()
    assert (body["actionId"], body["status"]) == (action_id, "completed")
    assert (body["awardedPoints"], body["totalScore"]) == (10, 10)
    again = await http.put(
        f"/users/{alice}/actions/{action_id}", json={"status": "completed"}, headers=auth(token)
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "ACTION_NOT_OPEN"

    # Stored as the specification's `actions` row; points awarded once, in the same commit.
    record = await served.services.store.get_action(action_id)
    assert record is not None and record.status == "completed" and record.points == 10
    assert record.ended_at is not None and record.ended_at >= record.started_at

    pushed = await live.wait_for(lambda m: m["payload"] != [])
    assert pushed["payload"] == [{"userId": alice, "username": alice_name, "score": 10}]
    top = await http.get("/top-scores")
    assert top.status_code == 200 and top.json() == pushed["payload"]

    # Someone else's actions: 403; unknown: 404; no token: 401.
    path = f"/users/{alice}/actions/{action_id}"
    completed = {"status": "completed"}
    assert (await http.put(path, json=completed, headers=auth(bob_token))).status_code == 403
    own_path = f"/users/{bob}/actions/{action_id}"
    assert (await http.put(own_path, json=completed, headers=auth(bob_token))).status_code == 403
    unknown = f"/users/{bob}/actions/no-such-action"
    assert (await http.put(unknown, json=completed, headers=auth(bob_token))).status_code == 404
    assert (await http.put(path, json=completed)).status_code == 401
    other = await http.post(f"/users/{alice}/actions", json={}, headers=auth(bob_token))
    assert other.status_code == 403
    await live.close()


async def test_cancel_exactly_once_and_anti_fraud(served: Served) -> None:
    http = served.http
    alice, alice_name = await account(http, "carol")
    token = await login001(http, alice_name)
    base = f"/users/{alice}/actions"

    cancel_id = await start(http, alice, token)
    r = await http.put(f"{base}/{cancel_id}", json={"status": "cancelled"}, headers=auth(token))
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["awardedPoints"]) == ("cancelled", 0)
    late = await http.put(f"{base}/{cancel_id}", json={"status": "completed"}, headers=auth(token))
    assert late.status_code == 409

    # Two racing completions of one action: one wins, points once.
    race_id = await start(http, alice, token)
    replies = await asyncio.gather(
        *(
            http.put(f"{base}/{race_id}", json={"status": "completed"}, headers=auth(token))
            for _ in range(4)
        )
    )
    assert sorted(r.status_code for r in replies) == [200, 409, 409, 409]

    # Too fast: refused, flagged suspicious, still open.
    quiz_id = await start(http, alice, token, type="QUIZ_PASSED")
    fast = await http.put(f"{base}/{quiz_id}", json={"status": "completed"}, headers=auth(token))
    assert fast.status_code == 400 and fast.json()["error"]["code"] == "VALIDATION_FAILED"
    quiz = await served.services.store.get_action(quiz_id)
    assert quiz is not None and quiz.suspicious and quiz.open

    # Open too long: expired (cancelled), 409.
    sprint_id = await start(http, alice, token, type="SPRINT")
    await asyncio.sleep(0.4)
    slow = await http.put(f"{base}/{sprint_id}", json={"status": "completed"}, headers=auth(token))
    assert slow.status_code == 409 and slow.json()["error"]["code"] == "ACTION_NOT_OPEN"
    sprint = await served.services.store.get_action(sprint_id)
    assert sprint is not None and sprint.status == "cancelled" and sprint.points is None

    bad_type = await http.post(
        base, json={"status": "started", "type": "NOPE"}, headers=auth(token)
    )
    assert bad_type.status_code == 400 and bad_type.json()["error"]["code"] == "INVALID_ACTION_TYPE"
    bad_body = await http.put(f"{base}/{quiz_id}", json={"status": "done"}, headers=auth(token))
    assert bad_body.status_code == 400

    assert await served.services.store.count_events() == 1
    assert await served.services.store.sum_event_points() == 10
    top = (await http.get("/top-scores")).json()
    assert top == [{"userId": alice, "username": alice_name, "score": 10}]


RULED = {
    "default_action_type": "TASK_COMPLETED",
    "actions": [
        {"action_type": "TASK_COMPLETED", "points": 10},
        {"action_type": "QUIZ_PASSED", "points": 25, "min_duration_seconds": 0.5},
    ],
}


async def test_lifecycle_rules_cannot_be_walked_around(database_url: str, tmp_path: Path) -> None:
    """An action with a minimum duration scores only through its lifecycle: every direct
    route refuses it, and parallel starts leave one action open, not twenty."""
    async with serve_catalogue(database_url, tmp_path, RULED) as served:
        http = served.http
        alice, name = await account(http, "walker")
        token = await login001(http, name)
        quiz = {"action_type": "QUIZ_PASSED"}
        direct = [
            await http.post("/api/v1/scores/events", json=quiz, headers=auth(token)),
            await http.post("/api/score/update", json=quiz, headers=auth(token)),
            await http.post(
                "/api/score/update",
                json={"user_id": alice, "auth_token": token, "score_increment": 5, **quiz},
            ),
            await http.post(
                "/api/v1/scores/update", json={**quiz, "score_increment": 5}, headers=auth(token)
            ),
        ]
        for r in direct:
            assert r.status_code == 400, r.text
            error = r.json()["error"]
            assert error["code"] == "VALIDATION_FAILED" and "lifecycle" in error["message"]
        assert r.json()["success"] is False  # 004's own shape
        assert await served.services.store.count_events() == 0

        starts = await asyncio.gather(
            *(start(http, alice, token, type="QUIZ_PASSED") for _ in range(20))
        )
        opened = [await served.services.store.get_action(a) for a in starts]
        assert sum(1 for a in opened if a is not None and a.open) == 1
        await asyncio.sleep(0.6)
        base = f"/users/{alice}/actions"
        done = await asyncio.gather(
            *(
                http.put(f"{base}/{a}", json={"status": "completed"}, headers=auth(token))
                for a in starts
            )
        )
        assert sorted(r.status_code for r in done) == [200] + [409] * 19
        assert await served.services.store.sum_event_points() == 25
        # A plain action is still directly scorable.
        plain = {"action_type": "TASK_COMPLETED"}
        r = await http.post("/api/v1/scores/events", json=plain, headers=auth(token))
        assert r.status_code == 201
