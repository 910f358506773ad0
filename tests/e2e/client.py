"""Small real clients for end-to-end tests: HTTP via httpx, live via `websockets`."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

_names = itertools.count()


async def new_user(http: httpx.AsyncClient, prefix: str = "e2e") -> tuple[str, str]:
    """Register and log in: (user_id, token)."""
    name = f"{prefix}{next(_names)}"
    r = await http.post("/api/v1/auth/register", json={"username": name, "password": "pass-word"})
    r.raise_for_status()
    user_id = r.json()["user_id"]
    r = await http.post("/api/v1/auth/login", json={"username": name, "password": "pass-word"})
    r.raise_for_status()
    return user_id, r.json()["access_token"]


class LiveClient:
    """Collects every message of one live connection in the background."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.closed = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str, **kwargs: Any) -> LiveClient:
        return cls(await connect(url, **kwargs))

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self.messages.append(json.loads(raw))
        except Exception:
            pass
        finally:
            self.closed.set()

    async def wait_for(self, predicate: Any, within: float = 5.0) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + within
        while asyncio.get_running_loop().time() < deadline:
            for message in self.messages:
                if predicate(message):
                    return message
            await asyncio.sleep(0.02)
        raise AssertionError(f"no matching message in {within}s; got {self.messages[-5:]}")

    def last_board(self) -> list[dict[str, Any]]:
        boards = [m for m in self.messages if m.get("type") in ("snapshot", "update")]
        return list(boards[-1]["items"])

    async def close(self) -> None:
        await self.ws.close()
        await self._task
