"""Live, several boards on one connection (API.md section 5), in-process: the connection is
the service's (`service.live`), the socket a list of the frames it was handed. Resets come
from the test's clock, not from sleeping."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from tests.api.clock import FakeClock
from tests.api.conftest import Api

from scoreboard.realtime.frames import TextFrame
from scoreboard.service.live_connection import MAX_SUBSCRIPTIONS, Connection


class ListWire:
    """A socket that takes every frame at once and keeps it."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None

    def write(self, frame: TextFrame) -> bool:
        self.messages.append(json.loads(frame.text))
        return True

    async def send(self, frame: TextFrame) -> None:
        self.write(frame)

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def boards(self, scope: str) -> list[dict[str, Any]]:
        return [
            m
            for m in self.messages
            if m.get("type") in ("snapshot", "update") and m["scope"] == scope
        ]


@asynccontextmanager
async def connect(api: Api, token: str, **query: str) -> AsyncIterator[tuple[Connection, ListWire]]:
    wire = ListWire()

    async def accept() -> None:
        return None

    live = api.services.live
    async with live.connection(token, query, "canonical", wire, accept) as connection:
        yield connection, wire


async def settle(api: Api) -> None:
    """Until every notice went round and the hub fanned it out (ticks are 10 ms in tests)."""
    for _ in range(5):
        await asyncio.sleep(0.05)


async def rest(api: Api, **params: Any) -> list[dict[str, Any]]:
    r = await api.client.get("/api/v1/leaderboard", params={"limit": 10, **params})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def token_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


async def test_several_boards_on_one_connection(
    database_url: str, api_factory: Callable[..., Any]
) -> None:
    clock = FakeClock(datetime(2026, 12, 2, 12, tzinfo=UTC))
    async with api_factory(database_url, clock=clock) as api:
        _, headers = await api.user()
        async with connect(api, token_of(headers), scope="global", limit="5") as (conn, wire):
            first = wire.messages[0]
            assert first["type"] == "snapshot" and first["scope"] == "global"
            assert first["period"] == {"id": "all", "starts_at": None, "ends_at": None}
            await conn.handle(json.dumps({"type": "subscribe", "scope": "weekly", "limit": 3}))
            snapshot = wire.boards("weekly")[-1]
            assert snapshot["type"] == "snapshot" and snapshot["period"]["id"] == "2026-W49"
            assert snapshot["next_reset_at"] == "2026-12-07T00:00:00.000Z"

            users = [await api.user() for _ in range(5)]
            for i, (_, h) in enumerate(users):
                for _ in range(i + 1):
                    assert (await api.score(h)).status_code == 201
            await settle(api)
            glob, weekly = wire.boards("global")[-1], wire.boards("weekly")[-1]
            assert glob["items"] == await rest(api, limit=5)
            assert weekly["items"] == await rest(api, scope="weekly", limit=3)
            assert weekly["type"] == "update" and len(weekly["items"]) == 3

            # Resubscribing replaces the limit (a new snapshot); unsubscribing stops updates.
            await conn.handle(json.dumps({"type": "subscribe", "scope": "weekly", "limit": 1}))
            assert wire.boards("weekly")[-1]["type"] == "snapshot"
            assert len(wire.boards("weekly")[-1]["items"]) == 1
            await conn.handle(json.dumps({"type": "unsubscribe", "scope": "weekly"}))
            before = len(wire.boards("weekly"))
            await api.score(users[0][1], "ACHIEVEMENT_UNLOCKED")
            await settle(api)
            assert len(wire.boards("weekly")) == before
            assert wire.boards("global")[-1]["items"] == await rest(api, limit=5)

            # Bad frames: an error, the connection kept.
            for bad in (
                {"type": "subscribe", "scope": "nope"},
                {"type": "subscribe", "scope": "daily", "period": "yesterday"},
                {"type": "subscribe", "scope": "daily", "limit": 0},
                {"type": "unsubscribe"},
                {"type": "dance"},
            ):
                await conn.handle(json.dumps(bad))
                assert wire.messages[-1]["type"] == "error", bad
            codes = {m["error"]["code"] for m in wire.messages if m["type"] == "error"}
            assert codes == {"INVALID_SCOPE", "VALIDATION_FAILED"}
            for i in range(MAX_SUBSCRIPTIONS + 2):
                period = f"2026-12-{i + 1:02d}"
                await conn.handle(
                    json.dumps({"type": "subscribe", "scope": "daily", "period": period})
                )
            assert wire.messages[-1]["type"] == "error"
            assert len(conn.subscribers) == MAX_SUBSCRIPTIONS


async def test_a_reset_sends_the_new_period_at_once(
    database_url: str, api_factory: Callable[..., Any]
) -> None:
    clock = FakeClock(datetime(2026, 12, 2, 23, 59, 59, tzinfo=UTC))
    async with api_factory(database_url, clock=clock) as api:
        _, headers = await api.user()
        await api.score(headers)
        async with connect(api, token_of(headers), scope="daily") as (conn, wire):
            await conn.handle(
                json.dumps({"type": "subscribe", "scope": "daily", "period": "previous"})
            )
            today = wire.boards("daily")[0]
            assert today["period"]["id"] == "2026-12-02" and len(today["items"]) == 1
            assert await api.services.live.reset_due() == []
            clock.set(datetime(2026, 12, 3, tzinfo=UTC))
            assert "daily" in await api.services.live.reset_due()
            current, previous = wire.boards("daily")[-2:]
            snapshots = sorted((current, previous), key=lambda m: m["period"]["id"])
            assert [m["type"] for m in snapshots] == ["snapshot", "snapshot"]
            assert snapshots[1]["period"]["id"] == "2026-12-03" and snapshots[1]["items"] == []
            assert snapshots[0]["period"]["id"] == "2026-12-02"
            assert len(snapshots[0]["items"]) == 1  # yesterday's board is now the previous one
            # The next event lands in the new day, live.
            await api.score(headers)
            await settle(api)
            last = [m for m in wire.boards("daily") if m["period"]["id"] == "2026-12-03"][-1]
            assert last["items"] == await rest(api, scope="daily")
            assert len(last["items"]) == 1
