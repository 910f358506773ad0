"""End to end: a real `scoreboard serve` process, real HTTP and WebSocket clients."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable

import httpx
import pytest
from tests.e2e.client import LiveClient, new_user
from tests.e2e.server import ServerProcess
from websockets.exceptions import ConnectionClosed

pytestmark = pytest.mark.e2e


async def quiet(clients: list[LiveClient], for_seconds: float = 0.6) -> None:
    """Wait until no client received anything for `for_seconds`."""
    counts = [-1]
    while True:
        now = [len(c.messages) for c in clients]
        if now == counts:
            return
        counts = now
        await asyncio.sleep(for_seconds)


async def test_every_client_ends_on_the_leaderboard(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        users = [await new_user(http) for _ in range(8)]
        token = users[0][1]
        ws = f"{server.ws_url}/ws/leaderboard"
        clients = [
            await LiveClient.open(f"{ws}?token={token}"),
            await LiveClient.open(f"{ws}?token={token}&limit=5"),
            await LiveClient.open(ws, additional_headers={"Authorization": f"Bearer {token}"}),
            await LiveClient.open(f"{ws}?limit=3", subprotocols=["bearer", token]),  # type: ignore[list-item]
        ]
        assert clients[3].ws.subprotocol == "bearer"
        for client in clients:
            snapshot = await client.wait_for(lambda m: m["type"] == "snapshot")
            assert snapshot["items"] == []

        rng = random.Random(3)
        actions = ["TASK_COMPLETED", "DAILY_LOGIN", "ACHIEVEMENT_UNLOCKED", "level_complete"]

        async def post(token: str) -> int:
            r = await http.post(
                "/api/v1/scores/events",
                json={"action_type": rng.choice(actions)},
                headers={"Authorization": f"Bearer {token}"},
            )
            return r.status_code

        codes = await asyncio.gather(*(post(t) for _, t in users for _ in range(10)))
        assert set(codes) == {201}
        await quiet(clients)
        for client, limit in zip(clients, (10, 5, 10, 3), strict=True):
            board = (await http.get("/api/v1/leaderboard", params={"limit": limit})).json()
            assert client.last_board() == board["items"]
            assert len(board["items"]) == min(limit, 8)
            assert all(m["type"] != "error" for m in client.messages)
        for client in clients:
            await client.close()


async def test_update_only_when_visible_top_changes(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        (_, leader), (_, other) = [await new_user(http) for _ in range(2)]
        auth = {"Authorization": f"Bearer {leader}"}
        await http.post(
            "/api/v1/scores/events", json={"action_type": "ACHIEVEMENT_UNLOCKED"}, headers=auth
        )
        client = await LiveClient.open(f"{server.ws_url}/ws/leaderboard?limit=1&token={leader}")
        await client.wait_for(lambda m: m["type"] == "snapshot")
        r = await http.post(
            "/api/v1/scores/events",
            json={"action_type": "DAILY_LOGIN"},
            headers={"Authorization": f"Bearer {other}"},
        )
        assert r.status_code == 201
        await asyncio.sleep(0.5)
        assert [m["type"] for m in client.messages] == ["snapshot"]
        await http.post(
            "/api/v1/scores/events", json={"action_type": "TASK_COMPLETED"}, headers=auth
        )
        update = await client.wait_for(lambda m: m["type"] == "update")
        assert update["items"][0]["score"] == 110
        await client.close()


async def test_deleted_user_leaves_live_board(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        (gone_id, gone), (_, watcher) = [await new_user(http) for _ in range(2)]
        auth = {"Authorization": f"Bearer {gone}"}
        await http.post(
            "/api/v1/scores/events", json={"action_type": "TASK_COMPLETED"}, headers=auth
        )
        client = await LiveClient.open(f"{server.ws_url}/ws/leaderboard?token={watcher}")
        snap = await client.wait_for(lambda m: m["type"] == "snapshot")
        assert [e["user_id"] for e in snap["items"]] == [gone_id]
        assert (await http.delete("/api/v1/users/me", headers=auth)).status_code == 204
        update = await client.wait_for(lambda m: m["type"] == "update")
        assert update["items"] == []
        await client.close()


async def test_a_new_display_name_shows_live_at_once(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        user_id, token = await new_user(http)
        auth = {"Authorization": f"Bearer {token}"}
        await http.post(
            "/api/v1/scores/events", json={"action_type": "TASK_COMPLETED"}, headers=auth
        )
        client = await LiveClient.open(f"{server.ws_url}/ws/leaderboard?token={token}")
        await client.wait_for(lambda m: m["type"] == "snapshot")
        r = await http.patch("/api/v1/users/me", json={"display_name": "Renamed Ü"}, headers=auth)
        assert r.status_code == 200
        update = await client.wait_for(lambda m: m["type"] == "update")
        assert [(e["user_id"], e["display_name"]) for e in update["items"]] == [
            (user_id, "Renamed Ü")
        ]
        board = (await http.get("/api/v1/leaderboard")).json()
        assert board["items"] == update["items"]
        await client.close()


@pytest.mark.parametrize("query", ["", "?token=garbage", "?token=a.b.c"])
async def test_bad_or_missing_token_closes_4401(server: ServerProcess, query: str) -> None:
    client = await LiveClient.open(f"{server.ws_url}/ws/leaderboard{query}")
    await asyncio.wait_for(client.closed.wait(), 5)
    assert client.messages[0]["type"] == "error"
    assert client.messages[0]["error"]["code"] == "UNAUTHENTICATED"
    assert client.ws.close_code == 4401


async def test_bad_params_close_with_validation_error(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        _, token = await new_user(http)
    for query in ("limit=0", "limit=abc", "scope=galaxy", "format=klingon"):
        client = await LiveClient.open(f"{server.ws_url}/ws/leaderboard?token={token}&{query}")
        await asyncio.wait_for(client.closed.wait(), 5)
        assert client.messages[0]["type"] == "error", query
        assert client.messages[0]["error"]["code"] in {"VALIDATION_FAILED", "INVALID_SCOPE"}


async def test_ping_pong_bad_frames_and_oversize(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        _, token = await new_user(http)
    client = await LiveClient.open(f"{server.ws_url}/ws/leaderboard?token={token}", max_size=None)
    await client.wait_for(lambda m: m["type"] == "snapshot")
    await client.ws.send('{"type": "ping"}')
    pong = await client.wait_for(lambda m: m["type"] == "pong")
    assert "timestamp" in pong
    for bad in ("not json", '{"type": "dance"}', "[1,2]", "x" * 5000):
        await client.ws.send(bad)
    await asyncio.sleep(0.3)
    errors = [m for m in client.messages if m["type"] == "error"]
    assert [e["error"]["code"] for e in errors] == ["VALIDATION_FAILED"] * 4
    assert not client.closed.is_set()
    with contextlib.suppress(ConnectionClosed):
        await client.ws.send("y" * (70 * 1024))
    await asyncio.wait_for(client.closed.wait(), 5)
    assert client.ws.close_code == 1009


async def test_token_expiry_closes_4401(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory(
        {"SCOREBOARD_TOKEN_TTL_SECONDS": "2", "SCOREBOARD_WS_PING_SECONDS": "0.5"}
    )
    async with httpx.AsyncClient(base_url=server.url) as http:
        _, token = await new_user(http)
    client = await LiveClient.open(f"{server.ws_url}/ws/leaderboard?token={token}")
    await client.wait_for(lambda m: m["type"] == "ping", within=3)
    await asyncio.wait_for(client.closed.wait(), 6)
    error = client.messages[-1]
    assert error["type"] == "error"
    assert error["error"] == {
        "code": "UNAUTHENTICATED",
        "message": "Authentication token expired.",
    }
    assert client.ws.close_code == 4401


async def test_anonymous_live_when_auth_not_required(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory({"SCOREBOARD_WS_REQUIRE_AUTH": "false"})
    client = await LiveClient.open(f"{server.ws_url}/ws/leaderboard")
    snapshot = await client.wait_for(lambda m: m["type"] == "snapshot")
    assert snapshot["limit"] == 10
    await client.close()
