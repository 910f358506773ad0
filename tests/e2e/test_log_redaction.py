"""No token in the server's log: the page's subprotocol is never logged, and a client that still
sends `?token=` gets its token replaced by *** in the access log and the WebSocket lines."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import websockets
from tests.e2e.client import new_user
from tests.e2e.server import ServerProcess

from scoreboard.redact import redact_target


def test_redact_target() -> None:
    assert redact_target("/ws/leaderboard?limit=10&token=eyJ.a-b_c") == (
        "/ws/leaderboard?limit=10&token=***"
    )
    assert redact_target("/x?TOKEN=abc&y=1") == "/x?TOKEN=***&y=1"
    assert redact_target("/x?access_token=abc") == "/x?access_token=***"
    assert redact_target("/x?tokens=abc") == "/x?tokens=abc"


def test_no_token_in_the_server_log(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path, {"SCOREBOARD_DATA_DIR": str(tmp_path / "data")}, log_level="info"
    )
    server.start()
    try:
        token = asyncio.run(_use_tokens(server))
        log = server.log()
    finally:
        server.stop()
    assert token not in log
    assert "token=***" in log  # the ?token= connection and GET were logged, redacted
    assert '"WebSocket /ws/leaderboard?limit=10&token=***" [accepted]' in log


async def _use_tokens(server: ServerProcess) -> str:
    async with httpx.AsyncClient(base_url=server.url) as http:
        _, token = await new_user(http, "redact")
        (await http.get(f"/api/v1/leaderboard?token={token}")).raise_for_status()
    url = f"{server.ws_url}/ws/leaderboard?limit=10"
    async with websockets.connect(url, subprotocols=["bearer", token]) as ws:  # the page's way
        assert ws.subprotocol == "bearer"
        await ws.recv()
    async with websockets.connect(f"{url}&token={token}") as ws:  # an older client's way
        await ws.recv()
    return token
