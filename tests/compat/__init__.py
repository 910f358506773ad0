"""Compatibility tests: for each specification, a client written from that document alone.

Helpers shared by the modules: a real server (uvicorn, in the test's own event loop, on a free
port) so that HTTP and live WebSocket clients talk to it over real sockets, and small client
steps that every specification needs (an account, since none of them documents registration).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from tests.conftest import free_port

from scoreboard.app import create_app
from scoreboard.config import Settings
from scoreboard.container import Services

PASSWORD = "pass-word-123"
_names = itertools.count()


@dataclass
class Served:
    app: FastAPI
    url: str
    ws_url: str
    http: httpx.AsyncClient

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services


@asynccontextmanager
async def serve(database_url: str, data_dir: Path, **overrides: Any) -> AsyncIterator[Served]:
    """A real server for one test; `overrides` are Settings fields."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "data_dir": data_dir,
        "rate_limit_score": "100000/minute",
        "rate_limit_login": "100000/minute",
        "rate_limit_login_address": "100000/minute",
        "rate_limit_register": "100000/minute",
        "ws_tick_ms": 10,
        **overrides,
    }
    app = create_app(Settings(_env_file=None, **values))  # type: ignore[call-arg]
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the server stopped during startup")
        await asyncio.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            yield Served(app, url, f"ws://127.0.0.1:{port}", http)
    finally:
        server.should_exit = True
        await task


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def account(http: httpx.AsyncClient, prefix: str = "user") -> tuple[str, str]:
    """Register through the canonical route: (user_id, username); names unique per run."""
    username = f"{prefix}{next(_names)}"
    r = await http.post("/api/v1/auth/register", json={"username": username, "password": PASSWORD})
    assert r.status_code == 201, r.text
    return r.json()["user_id"], username


async def login(http: httpx.AsyncClient, username: str) -> str:
    """A token from the canonical login (the specifications without a login route of their
    own take tokens from the shared identity service)."""
    r = await http.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


async def user(http: httpx.AsyncClient, prefix: str = "user") -> tuple[str, str]:
    """A registered, logged-in user: (user_id, token)."""
    user_id, username = await account(http, prefix)
    return user_id, await login(http, username)


async def board(http: httpx.AsyncClient, limit: int = 10) -> list[dict[str, Any]]:
    """The canonical leaderboard: the reference every dialect must agree with."""
    r = await http.get("/api/v1/leaderboard", params={"limit": limit})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def settle(clients: list[Any], quiet_for: float = 0.4) -> None:
    """Wait until no live client has received anything for `quiet_for` seconds."""
    counts: list[int] = [-1]
    while True:
        now = [len(c.messages) for c in clients]
        if now == counts:
            return
        counts = now
        await asyncio.sleep(quiet_for)


def seed003_entries(messages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What a 003 client keeps: userId -> entry, folded from its snapshot, update and remove
    messages."""
    entries: dict[str, dict[str, Any]] = {}
    for message in messages:
        if message["type"] == "snapshot":
            entries = {e["userId"]: e for e in message["top"]}
        elif message["type"] == "update":
            entries[message["userId"]] = message
        elif message["type"] == "remove":
            entries.pop(message["userId"], None)
    return entries


@asynccontextmanager
async def serve_catalogue(
    database_url: str, data_dir: Path, catalogue: dict[str, Any]
) -> AsyncIterator[Served]:
    """`serve` with an action catalogue of the test's own."""
    path = data_dir / "actions.json"
    path.write_text(json.dumps(catalogue))
    async with serve(database_url, data_dir, actions_file=path) as instance:
        yield instance
