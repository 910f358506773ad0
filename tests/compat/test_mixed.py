"""Mixed clients on one service: users score through the route families of 001 (action
lifecycle), 002 (body token), 003 (Bearer header) and 004 while live clients of the
`top_scores_update`, 003 and `leaderboard_update` dialects (and the canonical one) watch. Two
real `scoreboard serve` processes share PostgreSQL and Redis; every client, whichever process it
is connected to, ends on the same leaderboard."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from tests.compat import PASSWORD, auth, seed003_entries, settle
from tests.e2e.client import LiveClient
from tests.e2e.conftest import FAST
from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.e2e

Board = list[tuple[str, str, int]]  # (user_id, name, score), best first


@pytest.fixture
def servers(
    fresh_pg_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    env = {
        **FAST,
        "SCOREBOARD_DATABASE_URL": fresh_pg_url,
        "SCOREBOARD_REDIS_URL": redis_url,
        "SCOREBOARD_REDIS_PREFIX": redis_prefix,
        "SCOREBOARD_JWT_SECRET": secrets.token_urlsafe(48),
        "SCOREBOARD_DATA_DIR": str(tmp_path / "data"),
    }
    started: list[ServerProcess] = []
    try:
        for name in ("a", "b"):
            started.append(ServerProcess(tmp_path / name, env).start())
        yield started[0], started[1]
    finally:
        for server in started:
            server.stop()


def top_scores_board(live: LiveClient) -> Board:
    last = [m for m in live.messages if m["type"] == "top_scores_update"][-1]
    return [(e["userId"], e["username"], e["score"]) for e in last["payload"]]


def seed003_board(live: LiveClient) -> Board:
    ordered = sorted(seed003_entries(live.messages).values(), key=lambda e: e["rank"])
    return [(e["userId"], e["handle"], e["score"]) for e in ordered]


def leaderboard_update_board(live: LiveClient) -> Board:
    last = [m for m in live.messages if m["type"] == "leaderboard_update"][-1]
    return [(e["user_id"], e["username"], e["score"]) for e in last["data"]["leaderboard"]]


def canonical_board(live: LiveClient) -> Board:
    return [(e["user_id"], e["display_name"], e["score"]) for e in live.last_board()]


async def register(http: httpx.AsyncClient, name: str) -> tuple[str, str]:
    r = await http.post("/api/v1/auth/register", json={"username": name, "password": PASSWORD})
    assert r.status_code == 201, r.text
    r2 = await http.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
    assert r2.status_code == 200, r2.text
    return r.json()["user_id"], r2.json()["access_token"]


async def test_three_route_families_three_dialects_one_board(
    servers: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = servers
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=10) as http_a,
        httpx.AsyncClient(base_url=b.url, timeout=10) as http_b,
    ):
        tag = secrets.token_hex(3)
        users = [await register(http_a if i % 2 else http_b, f"mix{tag}{i}") for i in range(6)]
        token = users[0][1]
        watchers: list[tuple[LiveClient, Callable[[LiveClient], Board]]] = [
            (
                await LiveClient.open(
                    f"{a.ws_url}/ws/leaderboard?format=top_scores_update&token={token}"
                ),
                top_scores_board,
            ),
            (
                await LiveClient.open(f"{b.ws_url}/api/ws/leaderboard?token={token}"),
                seed003_board,
            ),
            (
                await LiveClient.open(
                    f"{b.ws_url}/ws/leaderboard?format=leaderboard_update",
                    additional_headers=auth(token),
                ),
                leaderboard_update_board,
            ),
            (await LiveClient.open(f"{a.ws_url}/scoreboard?token={token}"), canonical_board),
        ]

        async def via_001(http: httpx.AsyncClient, user_id: str, token: str) -> int:
            r = await http.post(f"/users/{user_id}/actions", json={}, headers=auth(token))
            assert r.status_code == 201, r.text
            done = await http.put(
                f"/users/{user_id}/actions/{r.json()['actionId']}",
                json={"status": "completed"},
                headers=auth(token),
            )
            return done.status_code

        async def via_002(http: httpx.AsyncClient, user_id: str, token: str) -> int:
            body = {"user_id": user_id, "auth_token": token, "score_increment": 7}
            return (await http.post("/api/score/update", json=body)).status_code

        async def via_003(http: httpx.AsyncClient, user_id: str, token: str) -> int:
            body = {"score_increment": 3}
            return (
                await http.post("/api/score/update", json=body, headers=auth(token))
            ).status_code

        async def via_004(http: httpx.AsyncClient, user_id: str, token: str) -> int:
            body = {"action_type": "ACHIEVEMENT_UNLOCKED", "score_increment": 40}
            r = await http.post("/api/v1/scores/update", json=body, headers=auth(token))
            return r.status_code

        families = [via_001, via_002, via_003, via_004]
        calls = [
            families[(i + n) % len(families)](http_a if n % 2 else http_b, user_id, token)
            for i, (user_id, token) in enumerate(users)
            for n in range(5)
        ]
        assert set(await asyncio.gather(*calls)) == {200}

        # Someone leaves: every dialect drops them (003 with a `remove` message).
        gone, gone_token = users[1]
        assert (
            await http_b.delete("/api/v1/users/me", headers=auth(gone_token))
        ).status_code == 204

        clients = [live for live, _ in watchers]
        await settle(clients, 0.6)
        points = [10, 7, 3, 40]  # per family: catalogue TASK_COMPLETED, then the increments
        scores = {user_id: 60 + points[i % 4] for i, (user_id, _) in enumerate(users)}
        for http in (http_a, http_b):
            r = await http.get("/api/v1/leaderboard", params={"limit": 10})
            expected = [(e["user_id"], e["display_name"], e["score"]) for e in r.json()["items"]]
            assert len(expected) == 5 and gone not in {user_id for user_id, _, _ in expected}
            assert all(score == scores[user_id] for user_id, _, score in expected)
            for live, decode in watchers:
                assert decode(live) == expected
                assert all(m.get("type") != "error" for m in live.messages)
        assert {"type": "remove", "userId": gone} in watchers[1][0].messages
        for live in clients:
            await live.close()
