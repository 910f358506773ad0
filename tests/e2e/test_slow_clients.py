"""End to end, real sockets: a client that stops reading is closed 1013 and counted; a client
that reads is never closed for what it sends (a ping burst gets its pongs)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import httpx
import pytest
from tests.e2e.client import LiveClient, new_user
from tests.e2e.rawws import RawWebSocket
from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.e2e


async def dropped(http: httpx.AsyncClient) -> float:
    text = (await http.get("/metrics")).text
    match = re.search(r"^scoreboard_ws_dropped_total ([0-9.e+]+)$", text, re.M)
    assert match is not None
    return float(match.group(1))


async def settled(client: LiveClient, for_seconds: float = 0.6) -> None:
    count = -1
    while len(client.messages) != count:
        count = len(client.messages)
        await asyncio.sleep(for_seconds)


async def wide_user(http: httpx.AsyncClient, n: int) -> str:
    """A user whose board entry is large (64 four-byte characters), so frames are big."""
    name, password = f"wide{n}", "pass-word"
    body = {"username": name, "password": password, "display_name": "\U0001d11e" * 64}
    (await http.post("/api/v1/auth/register", json=body)).raise_for_status()
    r = await http.post("/api/v1/auth/login", json={"username": name, "password": password})
    r.raise_for_status()
    return str(r.json()["access_token"])


async def test_client_that_stops_reading_is_closed_1013_and_counted(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory({"SCOREBOARD_WS_SEND_TIMEOUT_SECONDS": "1"})
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        tokens = await asyncio.gather(*(wide_user(http, n) for n in range(20)))
        path = f"/ws/leaderboard?limit=100&token={tokens[0]}"
        stalled = await asyncio.to_thread(RawWebSocket, "127.0.0.1", server.port, path)
        reader = await LiveClient.open(f"{server.ws_url}{path}")
        await reader.wait_for(lambda m: m["type"] == "snapshot")
        done = asyncio.Event()

        async def score(token: str) -> None:
            auth = {"Authorization": f"Bearer {token}"}
            while not done.is_set():
                r = await http.post(
                    "/api/v1/scores/events", json={"action_type": "DAILY_LOGIN"}, headers=auth
                )
                assert r.status_code == 201

        # Every event changes the top the stalled client would see, until its socket's
        # buffers are full and the server gives up on it (long before uvicorn's keepalive,
        # which would close it 1011 after 40 s).
        scorers = [asyncio.create_task(score(token)) for token in tokens[:4]]
        deadline = asyncio.get_running_loop().time() + 60
        while await dropped(http) < 1:
            assert asyncio.get_running_loop().time() < deadline, "never dropped"
            await asyncio.sleep(0.2)
        done.set()
        await asyncio.gather(*scorers)

        frames, close = await asyncio.to_thread(stalled.read_until_close)
        stalled.close()
        assert frames and close is not None, "the close frame must follow what was buffered"
        assert close.close_code == 1013
        assert b"Client too slow" in close.payload
        assert await dropped(http) == 1

        await settled(reader)
        board = (await http.get("/api/v1/leaderboard", params={"limit": 100})).json()
        assert reader.last_board() == board["items"]
        assert not reader.closed.is_set()
        await reader.close()


async def test_ping_burst_is_answered_and_never_evicts_a_reading_client(
    server: ServerProcess,
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        _, token = await new_user(http)
        client = await LiveClient.open(f"{server.ws_url}/ws/leaderboard?token={token}")
        await client.wait_for(lambda m: m["type"] == "snapshot")
        await asyncio.gather(*(client.ws.send('{"type": "ping"}') for _ in range(100)))

        def pongs() -> int:
            return sum(m["type"] == "pong" for m in client.messages)

        deadline = asyncio.get_running_loop().time() + 30
        while pongs() < 100 and not client.closed.is_set():
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
        assert not client.closed.is_set(), client.ws.close_code
        assert pongs() == 100
        assert await dropped(http) == 0
        await client.close()
