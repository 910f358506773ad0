"""Helpers of the event-log tests (`test_event_log.py`, `test_event_export.py`): an admin
key, a walk over every page, an export, events written in bulk, and a reader that stops."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
from tests.api.conftest import Api

from scoreboard.store.base import ScoreCommand
from scoreboard.store.event_log import EventQuery, LoggedEvent

EVENTS = "/api/v1/admin/events"
MINE = "/api/v1/users/me/events"
NDJSON = {"Accept": "application/x-ndjson"}


async def admin_key(api: Api, name: str = "ops") -> dict[str, str]:
    key, _ = await api.services.apikeys.create(name, "admin")
    return {"Authorization": f"Bearer {key}"}


async def walk(api: Api, path: str, headers: dict[str, str], **params: Any) -> list[Any]:
    """Every item of every page, following `next_cursor`; no item twice."""
    items: list[Any] = []
    cursor = None
    while True:
        query = params | ({} if cursor is None else {"cursor": cursor})
        r = await api.client.get(path, params=query, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["items"] or cursor is None  # a cursor is handed out only with more to come
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    ids = [item["event_id"] for item in items]
    assert ids == sorted(set(ids), reverse=True)  # newest first, no duplicate
    return items


async def export(api: Api, headers: dict[str, str], **params: Any) -> list[Any]:
    r = await api.client.get(EVENTS, params=params, headers=headers | NDJSON)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-ndjson"
    assert r.content == b"" or r.content.endswith(b"\n")
    return [orjson.loads(line) for line in r.content.splitlines()]


async def bulk(api: Api, user_ids: list[str], count: int, source: str = "user") -> None:
    """`count` events, round robin over `user_ids`, straight into the store in batches (the
    path every score write takes, minus HTTP)."""
    at_us = time.time_ns() // 1000
    commands = [
        ScoreCommand(
            user_ids[i % len(user_ids)], "TASK_COMPLETED", 10, at_us=at_us + i, source=source
        )
        for i in range(count)
    ]
    for start in range(0, count, 250):
        await api.services.store.record_events(commands[start : start + 250])


async def logged(api: Api) -> list[LoggedEvent]:
    """The whole log as the store holds it (exact times), newest first."""
    return await api.services.store.event_log(EventQuery(), 100_000)


def iso(moment: datetime, offset_hours: int = 0) -> str:
    """The instant in ISO-8601 with microseconds, at a UTC offset of `offset_hours`."""
    return moment.astimezone(timezone(timedelta(hours=offset_hours))).isoformat()


class SlowReader:
    """Drives the app as an HTTP server would, with a reader that stops after the first
    chunk until `resume` (a client that reads slowly)."""

    def __init__(self, api: Api, headers: dict[str, str]) -> None:
        self.api = api
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        self.messages: list[dict[str, Any]] = []
        self.paused = asyncio.Event()
        self.resume = asyncio.Event()
        self.done = asyncio.Event()
        self.requested = False

    async def receive(self) -> dict[str, Any]:
        if not self.requested:
            self.requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.done.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        if message["type"] == "http.response.body" and not self.paused.is_set():
            self.paused.set()
            await self.resume.wait()

    async def run(self) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": EVENTS,
            "raw_path": EVENTS.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"test"), *self.headers],
            "client": ("127.0.0.1", 50000),
            "server": ("test", 80),
            "state": {},
        }
        try:
            await self.api.app(scope, self.receive, self.send)
        finally:
            self.done.set()

    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages if m["type"].endswith("body"))
