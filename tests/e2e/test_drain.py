"""SIGTERM drains before stopping: `/readyz` answers 503 (`draining`) for
SCOREBOARD_DRAIN_SECONDS while requests are still served, then the process stops and live
clients are closed 1012 (reconnect elsewhere). A second SIGTERM stops at once."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import pytest
import websockets
from tests.e2e.client import new_user
from tests.e2e.server import ServerProcess


def server(tmp_path: Path, seconds: str) -> ServerProcess:
    env = {"SCOREBOARD_DATA_DIR": str(tmp_path / "data"), "SCOREBOARD_DRAIN_SECONDS": seconds}
    return ServerProcess(tmp_path, env, log_level="info").start()


@pytest.mark.e2e
async def test_sigterm_drains_then_stops_and_tells_live_clients(tmp_path: Path) -> None:
    srv = server(tmp_path, "2")
    assert srv.proc is not None
    async with httpx.AsyncClient(base_url=srv.url) as http:
        _, token = await new_user(http, "drain")
        url = f"{srv.ws_url}/ws/leaderboard?limit=10"
        async with websockets.connect(url, subprotocols=["bearer", token]) as ws:
            await ws.recv()  # the snapshot
            started = time.monotonic()
            srv.proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            ready = await http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["error"]["details"] == [{"field": "server", "problem": "draining"}]
            served = await http.post(  # still serving while the balancer notices
                "/api/v1/scores/events",
                json={"action_type": "TASK_COMPLETED"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert served.status_code == 201
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
            assert time.monotonic() - started >= 1.8  # not before the drain was over
    await asyncio.to_thread(srv.proc.wait, 10)
    assert "draining, /readyz answers 503 for 2.0 s" in srv.log()


@pytest.mark.e2e
def test_a_second_sigterm_stops_at_once(tmp_path: Path) -> None:
    srv = server(tmp_path, "60")
    assert srv.proc is not None
    srv.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert httpx.get(f"{srv.url}/readyz").status_code == 503
    started = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    srv.proc.wait(15)
    assert time.monotonic() - started < 10
