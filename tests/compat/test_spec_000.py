"""A short client written from specification 000 (the canonical API, `/api/v1`): score events
with idempotency, leaderboard reads, the live snapshot/update stream; plus the profile fields
the other specifications show (display name, avatar URL, region)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.compat import PASSWORD, Served, auth, serve, user
from tests.e2e.client import LiveClient


@pytest.fixture
async def served(database_url: str, tmp_path: Path) -> AsyncIterator[Served]:
    async with serve(database_url, tmp_path) as instance:
        yield instance


async def test_events_leaderboard_and_live(served: Served) -> None:
    http = served.http
    r = await http.post(
        "/api/v1/auth/register",
        json={"username": "charlie000", "password": PASSWORD, "display_name": "charlie"},
    )
    assert r.status_code == 201
    assert r.json().items() >= {"username": "charlie000", "display_name": "charlie"}.items()
    charlie = r.json()["user_id"]
    r = await http.post("/api/v1/auth/login", json={"username": "charlie000", "password": PASSWORD})
    token = r.json()["access_token"]
    alice, alice_token = await user(http, "alice")

    live = await LiveClient.open(f"{served.ws_url}/ws/leaderboard?token={token}")
    snapshot = await live.wait_for(lambda m: m["type"] == "snapshot")
    assert (snapshot["limit"], snapshot["items"]) == (10, [])
    assert snapshot["generated_at"].endswith("Z")

    never = (await http.get("/api/v1/leaderboard/me", headers=auth(token))).json()
    assert never == {
        "scope": "global",
        "period": {"id": "all", "starts_at": None, "ends_at": None},
        "next_reset_at": None,
        "user_id": charlie,
        "display_name": "charlie",
        "score": 0,
        "rank": None,
        "around_me": [],
    }

    event = {"action_type": "TASK_COMPLETED"}
    keyed = auth(token) | {"Idempotency-Key": "5b1f0c3e-0000-4000-8000-000000000001"}
    first = await http.post("/api/v1/scores/events", json=event, headers=keyed)
    assert first.status_code == 201
    body = first.json()
    assert (
        body.items()
        >= {
            "user_id": charlie,
            "action_type": "TASK_COMPLETED",
            "awarded_points": 10,
            "new_score": 10,
        }.items()
    )
    assert body["processed_at"].endswith("Z")
    replay = await http.post("/api/v1/scores/events", json=event, headers=keyed)
    assert replay.status_code == 200 and replay.json() == {**body, "idempotent": True}
    other = {"action_type": "DAILY_LOGIN"}
    conflict = await http.post("/api/v1/scores/events", json=other, headers=keyed)
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "IDEMPOTENCY_CONFLICT"
    foo = await http.post("/api/v1/scores/events", json={"action_type": "FOO_BAR"}, headers=keyed)
    assert foo.status_code == 400 and foo.json()["error"]["code"] == "INVALID_ACTION_TYPE"
    anonymous = await http.post("/api/v1/scores/events", json=event)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "UNAUTHENTICATED"

    r = await http.post(
        "/api/v1/scores/events",
        json={"action_type": "ACHIEVEMENT_UNLOCKED"},
        headers=auth(alice_token),
    )
    assert r.status_code == 201

    page = (await http.get("/api/v1/leaderboard", params={"limit": 10, "offset": 0})).json()
    assert (page["limit"], page["offset"]) == (10, 0)
    assert page["items"] == [
        {
            "rank": 1,
            "user_id": alice,
            "display_name": page["items"][0]["display_name"],
            "score": 100,
        },
        {"rank": 2, "user_id": charlie, "display_name": "charlie", "score": 10},
    ]
    me = (await http.get("/api/v1/leaderboard/me", headers=auth(token))).json()
    assert (me["score"], me["rank"]) == (10, 2)
    assert [e["user_id"] for e in me["around_me"]] == [alice, charlie]

    update = await live.wait_for(lambda m: m["type"] == "update" and m["items"] == page["items"])
    assert update["generated_at"].endswith("Z")
    await live.close()


async def test_profile_fields(served: Served) -> None:
    http = served.http
    user_id, token = await user(http, "dana")
    me = await http.get("/api/v1/users/me", headers=auth(token))
    assert me.status_code == 200
    assert me.json().items() >= {"user_id": user_id, "avatar_url": None, "region": None}.items()
    changes = {
        "display_name": "Dana",
        "avatar_url": "https://cdn.example.com/avatars/dana.png",
        "region": "APAC",
    }
    r = await http.patch("/api/v1/users/me", json=changes, headers=auth(token))
    assert r.status_code == 200 and r.json().items() >= changes.items()
    assert (await http.get("/api/v1/users/me", headers=auth(token))).json() == r.json()
    cleared = await http.patch("/api/v1/users/me", json={"avatar_url": ""}, headers=auth(token))
    assert cleared.json()["avatar_url"] is None and cleared.json()["region"] == "APAC"
    for bad in (
        {"avatar_url": "javascript:alert(1)"},
        {"display_name": "   "},
        {"region": "x" * 65},
        {"score": 1000},
    ):
        r = await http.patch("/api/v1/users/me", json=bad, headers=auth(token))
        assert r.status_code == 400 and r.json()["error"]["code"] == "VALIDATION_FAILED", bad
    assert (await http.get("/api/v1/users/me")).status_code == 401
