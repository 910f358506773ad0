"""Structured logs of a real server: `SCOREBOARD_LOG_FORMAT=json` gives one JSON object per
line; the request id (the client's `X-Request-Id`, or a new one) comes back in the answer and is
in the request's log lines (uvicorn's access line included); alembic's start-up lines are gone."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest
from tests.e2e.server import ServerProcess


@pytest.mark.e2e
def test_json_lines_with_the_request_id(tmp_path: Path) -> None:
    env = {"SCOREBOARD_DATA_DIR": str(tmp_path / "data"), "SCOREBOARD_LOG_FORMAT": "json"}
    server = ServerProcess(tmp_path, env, log_level="info").start()
    try:
        given = httpx.get(f"{server.url}/api/v1/leaderboard", headers={"X-Request-Id": "trace-7"})
        made = httpx.get(f"{server.url}/api/v1/leaderboard?limit=0")  # a 400 of the hot path
        refused = httpx.get(f"{server.url}/api/v1/leaderboard?scope=%00")  # the layer's own 400
    finally:
        server.stop()
    assert given.headers["x-request-id"] == "trace-7"
    assert made.status_code == 400 and len(made.headers["x-request-id"]) == 16
    assert refused.status_code == 400 and refused.headers["x-request-id"]
    lines = [orjson.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    by_id = {line.get("request_id"): line["message"] for line in access}
    assert "GET /api/v1/leaderboard HTTP/1.1" in by_id["trace-7"]
    assert "limit=0" in by_id[made.headers["x-request-id"]]
    assert not any(line["logger"].startswith("alembic") for line in lines)
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    # Every line of the process is JSON (nothing printed around the logging configuration
    # but the one-line start-up banner of the command).
    others = [line for line in server.log().splitlines() if line and not line.startswith("{")]
    assert all("embedded mode" in line for line in others), others


@pytest.mark.e2e
def test_text_lines_name_the_request(tmp_path: Path) -> None:
    env = {"SCOREBOARD_DATA_DIR": str(tmp_path / "data")}
    server = ServerProcess(tmp_path, env, log_level="info").start()
    try:
        httpx.get(f"{server.url}/healthz", headers={"X-Request-Id": "abc.1"})
    finally:
        server.stop()
    line = next(line for line in server.log().splitlines() if "GET /healthz" in line)
    assert "uvicorn.access [req=abc.1]:" in line
