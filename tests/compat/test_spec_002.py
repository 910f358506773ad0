"""A client written from specification 002 alone: `POST /api/score/update` with
`{user_id, auth_token, score_increment}` in the body, and live updates from
`wss://.../scoreboard?token=<JWT>`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.compat import Served, board, serve, user
from tests.e2e.client import LiveClient

SUCCESS = {"status": "success", "message": "Score updated successfully."}
AUTH_FAILED = {"status": "error", "message": "Authentication failed."}


@pytest.fixture
async def served(database_url: str, tmp_path: Path) -> AsyncIterator[Served]:
    async with serve(database_url, tmp_path) as instance:
        yield instance


async def test_update_score_and_live_scoreboard(served: Served) -> None:
    http = served.http
    alice, token = await user(http, "alice")
    bob, bob_token = await user(http, "bob")

    refused = await LiveClient.open(f"{served.ws_url}/scoreboard?token=not-a-jwt")
    await refused.closed.wait()
    assert refused.ws.close_code == 4401
    live = await LiveClient.open(f"{served.ws_url}/scoreboard?token={token}")
    await live.wait_for(lambda m: m["type"] == "snapshot" and m["items"] == [])

    def update(user_id: str, auth_token: str, increment: object) -> dict[str, object]:
        return {"user_id": user_id, "auth_token": auth_token, "score_increment": increment}

    r = await http.post("/api/score/update", json=update(alice, token, 7))
    assert r.status_code == 200, r.text
    assert r.json().items() >= {**SUCCESS, "new_score": 7}.items()
    r = await http.post("/api/score/update", json=update(alice, token, 5))
    assert r.json()["new_score"] == 12
    r = await http.post("/api/score/update", json=update(bob, bob_token, 20))
    assert r.json().items() >= {**SUCCESS, "new_score": 20}.items()

    # Failures: a bad token, or a token that is not user_id's.
    r = await http.post("/api/score/update", json=update(alice, "forged.token.value", 5))
    assert r.status_code == 401 and r.json().items() >= AUTH_FAILED.items()
    r = await http.post("/api/score/update", json=update(alice, bob_token, 5))
    assert r.status_code == 403 and r.json()["status"] == "error"

    # Increments outside the catalogue's bounds (1..100 by default): 400, nothing written.
    events = await served.services.store.count_events()
    for increment in (0, -5, 101, "10"):
        r = await http.post("/api/score/update", json=update(alice, token, increment))
        assert r.status_code == 400 and r.json()["status"] == "error", increment
    assert await served.services.store.count_events() == events

    # The live view ends on the leaderboard: bob 20, alice 12.
    expected = await board(http)
    assert [(e["user_id"], e["score"]) for e in expected] == [(bob, 20), (alice, 12)]
    final = await live.wait_for(lambda m: m["type"] == "update" and m["items"] == expected)
    assert final["generated_at"].endswith("Z")
    await live.close()


async def test_retries_are_idempotent(served: Served) -> None:
    http = served.http
    alice, token = await user(http, "carol")
    body = {"user_id": alice, "auth_token": token, "score_increment": 9}
    for _ in range(2):
        r = await http.post("/api/score/update", json=body, headers={"Idempotency-Key": "k-1"})
        assert r.status_code == 200 and r.json()["new_score"] == 9
    r = await http.post(
        "/api/score/update", json={**body, "score_increment": 8}, headers={"Idempotency-Key": "k-1"}
    )
    assert r.status_code == 409 and r.json()["status"] == "error"
    assert await served.services.store.count_events() == 1
