"""Boards across processes (issue 11): three `scoreboard serve` processes on one PostgreSQL and
one Redis; a client subscribed to two boards on one process; events posted to the others;
every client's last message per board equals the REST read of every process."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import httpx
import pytest
from tests.e2e.client import LiveClient, new_user

from .conftest import Start

pytestmark = pytest.mark.e2e

SCORE = "/api/v1/scores/events"


def last_of(client: LiveClient, scope: str) -> list[dict[str, object]]:
    boards = [
        m
        for m in client.messages
        if m.get("type") in ("snapshot", "update") and m.get("scope") == scope
    ]
    return list(boards[-1]["items"]) if boards else []


async def test_two_boards_on_one_connection_across_three_processes(
    start: Start, env: dict[str, str]
) -> None:
    servers = await asyncio.gather(*(start(env, name) for name in ("a", "b", "c")))
    https = [httpx.AsyncClient(base_url=s.url) for s in servers]
    try:
        users = [await new_user(https[i % 3], "boards") for i in range(9)]
        token = users[0][1]
        live = await LiveClient.open(f"{servers[0].ws_url}/ws/leaderboard?token={token}&limit=5")
        await live.wait_for(lambda m: m["type"] == "snapshot" and m["scope"] == "global")
        await live.ws.send(json.dumps({"type": "subscribe", "scope": "weekly", "limit": 3}))
        await live.wait_for(lambda m: m["type"] == "snapshot" and m["scope"] == "weekly")
        other = await LiveClient.open(
            f"{servers[2].ws_url}/ws/leaderboard?token={token}&scope=daily&limit=10"
        )
        await other.wait_for(lambda m: m["type"] == "snapshot" and m["scope"] == "daily")

        rng = random.Random(5)
        actions = ["TASK_COMPLETED", "DAILY_LOGIN", "ACHIEVEMENT_UNLOCKED", "level_complete"]

        async def post(token: str) -> int:
            http = https[rng.choice((1, 2))]  # not the process the first client is on
            r = await http.post(
                SCORE,
                json={"action_type": rng.choice(actions)},
                headers={"Authorization": f"Bearer {token}"},
            )
            return r.status_code

        codes = await asyncio.gather(*(post(t) for _, t in users for _ in range(6)))
        assert set(codes) == {201}

        async def rest(http: httpx.AsyncClient, scope: str, limit: int) -> list[object]:
            r = await http.get("/api/v1/leaderboard", params={"scope": scope, "limit": limit})
            assert r.status_code == 200 and r.json()["scope"] == scope
            return list(r.json()["items"])

        expected = {
            scope: await rest(https[0], scope, limit)
            for scope, limit in (("global", 5), ("weekly", 3), ("daily", 10))
        }
        for http in https:  # every process serves the same boards
            for scope, limit in (("global", 5), ("weekly", 3), ("daily", 10)):
                assert await rest(http, scope, limit) == expected[scope]
        for client, scope in ((live, "global"), (live, "weekly"), (other, "daily")):
            await client.wait_for(
                lambda m, s=scope: m.get("scope") == s and m["items"] == expected[s], within=10
            )
            assert last_of(client, scope) == expected[scope]
        assert len(expected["global"]) == 5 and len(expected["weekly"]) == 3
        await live.close()
        await other.close()
    finally:
        for http in https:
            await http.aclose()


async def test_a_deleted_user_leaves_a_region_board_another_process_serves(
    start: Start, env: dict[str, str], tmp_path: Path
) -> None:
    boards = tmp_path / "boards.json"
    boards.write_text(
        json.dumps(
            {
                "boards": [
                    {"board_id": "global"},
                    {"board_id": "weekly_region", "window": "weekly", "partition": "region"},
                ]
            }
        )
    )
    with_boards = {**env, "SCOREBOARD_BOARDS_FILE": str(boards)}
    a, b = await asyncio.gather(start(with_boards, "a"), start(with_boards, "b"))
    async with httpx.AsyncClient(base_url=a.url) as on_a, httpx.AsyncClient(base_url=b.url) as on_b:
        _, token = await new_user(on_b, "regional")
        auth = {"Authorization": f"Bearer {token}"}
        r = await on_b.patch("/api/v1/users/me", json={"region": "eu"}, headers=auth)
        assert r.status_code == 200, r.text
        r = await on_b.post(SCORE, json={"action_type": "TASK_COMPLETED"}, headers=auth)
        assert r.status_code == 201, r.text
        params = {"scope": "weekly_region", "region": "eu"}
        r = await on_b.get("/api/v1/leaderboard", params=params)
        assert r.json()["total"] == 1  # B serves the eu view, from the shared index
        # A never served the eu view; the deletion there still takes the user off it.
        assert (await on_a.delete("/api/v1/users/me", headers=auth)).status_code == 204
        for _ in range(50):
            r = await on_b.get("/api/v1/leaderboard", params=params)
            if r.json()["total"] == 0:
                break
            await asyncio.sleep(0.1)
        assert r.json()["total"] == 0 and r.json()["items"] == []
