"""The event log (API.md section 6, "Audit log query"): `GET /api/v1/admin/events` (filters,
cursor pages newest first, the NDJSON export over many chunks) and `GET /api/v1/users/me/events`
(the caller's own, sources as a user is told them). On SQLite, PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from tests.api.conftest import Api
from tests.proxy import TcpProxy, via

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


async def test_who_may_read_the_event_log(api: Api) -> None:
    _, user = await api.user()
    scorer, _ = await api.services.apikeys.create("backend", "scorer")
    admin = await admin_key(api)
    refusals: list[tuple[str, dict[str, str], int, str]] = [
        (EVENTS, {}, 401, "UNAUTHENTICATED"),
        (EVENTS, {"Authorization": "Bearer garbage"}, 401, "UNAUTHENTICATED"),
        (EVENTS, user, 403, "FORBIDDEN"),
        (EVENTS, {"Authorization": f"Bearer {scorer}"}, 403, "FORBIDDEN"),
        (EVENTS, user | NDJSON, 403, "FORBIDDEN"),
        (MINE, {}, 401, "UNAUTHENTICATED"),
        (MINE, {"Authorization": "Bearer garbage"}, 401, "UNAUTHENTICATED"),
        (MINE, admin, 401, "UNAUTHENTICATED"),  # an API key is no user: it has no events
    ]
    for path, headers, status, code in refusals:
        r = await api.client.get(path, headers=headers)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), (path, headers)
    for path, headers in ((EVENTS, admin), (MINE, user)):
        r = await api.client.get(path, headers=headers)
        assert r.status_code == 200, r.text
        assert r.json() == {"items": [], "next_cursor": None}
    assert await export(api, admin) == []


async def test_bad_input_is_refused_with_the_error_shape(api: Api) -> None:
    _, user = await api.user()
    admin = await admin_key(api)
    not_ours = base64.urlsafe_b64encode(b"12x").decode().rstrip("=")
    refused: list[tuple[str, dict[str, Any], str]] = [
        (EVENTS, {"cursor": "garbage!"}, "cursor"),
        (EVENTS, {"cursor": not_ours}, "cursor"),
        (EVENTS, {"cursor": "MTI="}, "cursor"),  # padded: not what the API hands out
        (EVENTS, {"cursor": "x" * 65}, "cursor"),
        (EVENTS, {"limit": 0}, "limit"),
        (EVENTS, {"limit": 101}, "limit"),
        (EVENTS, {"limit": "many"}, "limit"),
        (EVENTS, {"since": "yesterday"}, "since"),
        (EVENTS, {"since": "2026-12-01T00:00:00"}, "since"),  # no time zone: not guessed
        (EVENTS, {"until": "2026-12-01"}, "until"),
        (EVENTS, {"until": "2026-13-01T00:00:00Z"}, "until"),
        (EVENTS, {"since": "1764547200"}, "since"),  # epoch seconds are not ISO-8601
        (EVENTS, {"since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"}, "since"),
        (EVENTS, {"user_id": "u" * 65}, "user_id"),
        (EVENTS, {"action_type": ""}, "action_type"),
        (MINE, {"cursor": "garbage!"}, "cursor"),
        (MINE, {"limit": 0}, "limit"),
        (MINE, {"limit": 101}, "limit"),
    ]
    for path, params, field in refused:
        for headers in [admin if path == EVENTS else user] + ([admin | NDJSON] * (path == EVENTS)):
            r = await api.client.get(path, params=params, headers=headers)
            assert r.status_code == 400, (path, params, r.text)
            error = r.json()["error"]
            assert error["code"] == "VALIDATION_FAILED" and error["message"], (params, error)
            assert field in {d["field"] for d in error["details"]}, (params, error)
    # A time with an offset is the same instant as in UTC; since == until is simply empty.
    for params in (
        {"since": "2026-12-01T01:00:00+01:00", "until": "2026-12-01T00:00:00Z"},
        {"since": "2026-12-01T00:00:00.5Z"},
    ):
        r = await api.client.get(EVENTS, params=params, headers=admin)
        assert r.status_code == 200, (params, r.text)


async def test_items_sources_and_the_void_pair(api: Api) -> None:
    alice, alice_h = await api.user()
    bob, bob_h = await api.user()
    boss, _ = await api.user("boss")
    await api.services.roles.promote("boss", actor="test")
    r = await api.client.post(
        "/api/v1/auth/login", json={"username": "boss", "password": "correct horse"}
    )
    boss_h = {"Authorization": f"Bearer {r.json()['access_token']}"}
    scorer, _ = await api.services.apikeys.create("backend", "scorer")

    own = (await api.score(alice_h, "TASK_COMPLETED", key="k-1")).json()
    server = await api.client.post(
        f"/api/v1/users/{alice}/score-events",
        json={"action_type": "ACHIEVEMENT_UNLOCKED"},
        headers={"Authorization": f"Bearer {scorer}", "Idempotency-Key": "srv-1"},
    )
    assert server.status_code == 201, server.text
    adjusted = await api.client.post(
        f"/api/v1/admin/users/{alice}/adjust", json={"points": -3, "reason": "x"}, headers=boss_h
    )
    assert adjusted.status_code == 201, adjusted.text
    voided = await api.client.post(
        f"/api/v1/admin/events/{own['event_id']}/void", json={"reason": "dup"}, headers=boss_h
    )
    assert voided.status_code == 200, voided.text
    by_key = await api.client.post(
        f"/api/v1/admin/users/{bob}/adjust",
        json={"points": 5, "reason": "x"},
        headers=await admin_key(api),
    )
    assert by_key.status_code == 201, by_key.text
    bobs = (await api.score(bob_h, "TASK_COMPLETED")).json()

    items = await walk(api, EVENTS, await admin_key(api, "reader"))
    ids = {
        "own": own["event_id"],
        "server": server.json()["event_id"],
        "adjust": adjusted.json()["event_id"],
        "void": voided.json()["event_id"],
        "by_key": by_key.json()["event_id"],
        "bob": bobs["event_id"],
    }
    assert [i["event_id"] for i in items] == sorted(ids.values(), reverse=True)
    got = {i["event_id"]: i for i in items}
    for item in items:
        assert item["created_at"].endswith("Z") and "T" in item["created_at"]
        del item["created_at"]
    expected = {
        "own": (alice, "TASK_COMPLETED", 10, "k-1", None, ids["void"], "user"),
        "server": (alice, "ACHIEVEMENT_UNLOCKED", 100, "srv-1", None, None, "apikey:backend"),
        "adjust": (alice, "ADJUSTMENT", -3, None, None, None, f"admin:{boss}"),
        "void": (alice, "TASK_COMPLETED", -10, None, ids["own"], None, f"admin:{boss}"),
        "by_key": (bob, "ADJUSTMENT", 5, None, None, None, "apikey:ops"),
        "bob": (bob, "TASK_COMPLETED", 10, None, None, None, "user"),
    }
    keys = ("user_id", "action_type", "points", "idempotency_key", "voids", "voided_by", "source")
    for name, values in expected.items():
        assert got[ids[name]] == {"event_id": ids[name], **dict(zip(keys, values, strict=True))}

    # The user's own view: their events only, the same items but for who wrote them, told as
    # `user`, `server` or `admin` (never which key or which admin). Also while quarantined.
    told = {"own": "user", "server": "server", "adjust": "admin", "void": "admin"}
    await api.services.moderation.act("test", "quarantine", alice, "looks odd")
    mine = await walk(api, MINE, alice_h, limit=2)
    assert [i["event_id"] for i in mine] == sorted((ids[n] for n in told), reverse=True)
    for item in mine:
        assert item["created_at"].endswith("Z")
        del item["created_at"]
        name = next(n for n in told if ids[n] == item["event_id"])
        assert item == got[ids[name]] | {"source": told[name]}
    theirs = await walk(api, MINE, bob_h)
    assert [(i["event_id"], i["source"]) for i in theirs] == [
        (ids["bob"], "user"),
        (ids["by_key"], "server"),
    ]


async def test_filters_each_and_combined(api: Api) -> None:
    alice, alice_h = await api.user()
    bob, bob_h = await api.user()
    for i in range(12):
        action = "ACHIEVEMENT_UNLOCKED" if i % 4 else "TASK_COMPLETED"
        r = await api.score(alice_h if i % 3 else bob_h, action)
        assert r.status_code == 201, r.text
    await api.score(alice_h, "TASK_COMPLETED")
    admin = await admin_key(api)
    everything = await logged(api)
    assert len(everything) == 13
    middle, late = everything[9].created_at, everything[2].created_at
    cases: list[tuple[dict[str, Any], Callable[[LoggedEvent], bool]]] = [
        ({}, lambda e: True),
        ({"user_id": alice}, lambda e: e.user_id == alice),
        ({"user_id": "nobody"}, lambda e: False),
        ({"action_type": "TASK_COMPLETED"}, lambda e: e.action_type == "TASK_COMPLETED"),
        ({"action_type": "NO_SUCH_TYPE"}, lambda e: False),
        ({"since": iso(middle)}, lambda e: e.created_at >= middle),
        ({"until": iso(middle)}, lambda e: e.created_at < middle),
        (
            {"since": iso(middle, 5), "until": iso(late, -7)},
            lambda e: middle <= e.created_at < late,
        ),
        ({"since": iso(late), "until": iso(late)}, lambda e: False),
        (
            {"user_id": alice, "action_type": "ACHIEVEMENT_UNLOCKED", "since": iso(middle)},
            lambda e: (
                e.user_id == alice
                and e.action_type == "ACHIEVEMENT_UNLOCKED"
                and e.created_at >= middle
            ),
        ),
        (
            {"user_id": bob, "until": iso(late)},
            lambda e: e.user_id == bob and e.created_at < late,
        ),
    ]
    for params, keep in cases:
        want = [e.event_id for e in everything if keep(e)]
        got = [i["event_id"] for i in await walk(api, EVENTS, admin, limit=2, **params)]
        assert got == want, params
        assert [i["event_id"] for i in await export(api, admin, **params)] == want, params
    # The filters narrow the sets the cases cover: not all equal, not all empty.
    assert 0 < len([e for e in everything if e.created_at >= middle]) < len(everything)


async def test_pages_cross_without_duplicates_or_gaps(api: Api) -> None:
    alice, _ = await api.user()
    bob, _ = await api.user()
    await bulk(api, [alice, bob], 23)
    admin = await admin_key(api)
    whole = await walk(api, EVENTS, admin, limit=100)
    assert len(whole) == 23
    for limit in (1, 5, 22, 23):
        assert await walk(api, EVENTS, admin, limit=limit) == whole, limit
    r = await api.client.get(EVENTS, params={"limit": 23}, headers=admin)
    assert r.json()["next_cursor"] is None
    # A cursor stays valid while events are appended: they show on a first page only.
    first = (await api.client.get(EVENTS, params={"limit": 10}, headers=admin)).json()
    await bulk(api, [alice], 4)
    rest = await walk(api, EVENTS, admin, limit=7, cursor=first["next_cursor"])
    assert first["items"] + rest == whole
    # The default page holds 50.
    await bulk(api, [bob], 40)
    r = await api.client.get(EVENTS, headers=admin)
    assert len(r.json()["items"]) == 50 and r.json()["next_cursor"] is not None


async def test_ndjson_is_every_page_together(
    database_url: str, api_factory: Callable[..., Any]
) -> None:
    async with api_factory(database_url, export_chunk_size=3) as api:
        alice, alice_h = await api.user()
        bob, _ = await api.user()
        await bulk(api, [alice, bob], 20)
        await api.score(alice_h, "ACHIEVEMENT_UNLOCKED")
        admin = await admin_key(api)
        for params in ({}, {"user_id": alice}, {"action_type": "ACHIEVEMENT_UNLOCKED"}):
            # `limit` does not apply to the export (it is still checked: see the refusals).
            lines = await export(api, admin, limit=2, **params)
            assert lines == await walk(api, EVENTS, admin, limit=4, **params), params
        assert len(await export(api, admin)) == 21
        # With a page's cursor, the export is the rest after that page.
        page = (await api.client.get(EVENTS, params={"limit": 5}, headers=admin)).json()
        rest = await export(api, admin, cursor=page["next_cursor"])
        assert page["items"] + rest == await walk(api, EVENTS, admin)
        # Content negotiation: NDJSON only when preferred to JSON.
        for accept, ndjson in [
            ("application/x-ndjson", True),
            ("application/json;q=0.4, application/x-ndjson", True),
            ("application/x-ndjson;q=0.5, application/json", False),
            ("application/x-ndjson;q=0", False),
            ("*/*", False),
            ("text/html", False),
        ]:
            r = await api.client.get(EVENTS, headers=admin | {"Accept": accept})
            assert r.status_code == 200, r.text
            assert r.headers["content-type"].startswith(
                "application/x-ndjson" if ndjson else "application/json"
            ), accept


async def test_an_export_over_many_chunks(
    database_url: str, api_factory: Callable[..., Any]
) -> None:
    async with api_factory(database_url, export_chunk_size=100) as api:
        users = [(await api.user())[0] for _ in range(3)]
        await bulk(api, users, 2500, source="apikey:import")
        lines = await export(api, await admin_key(api))
        assert len(lines) == 2500
        ids = [line["event_id"] for line in lines]
        assert ids == sorted(set(ids), reverse=True)
        assert {line["source"] for line in lines} == {"apikey:import"}
        assert {line["user_id"] for line in lines} == set(users)
        # The setting is the size of each read: 25 reads of 100, none larger.
        chunks = await api.services.event_log.export(EventQuery())
        assert [len(chunk) async for chunk in chunks] == [100] * 25
        mine = await api.services.event_log.export(EventQuery(user_id=users[0]))
        assert [len(chunk) async for chunk in mine] == [100] * 8 + [34]


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


def checked_out(api: Api) -> int:
    engines = api.services.store._engines  # type: ignore[attr-defined]
    pools = {id(e.pool): e.pool for e in (engines.read, engines.write)}
    return sum(pool.checkedout() for pool in pools.values())


async def test_a_slow_reader_holds_no_connection(
    database_url: str, api_factory: Callable[..., Any]
) -> None:
    # Each chunk is its own read with its own database budget: a reader slower than the whole
    # budget (1 s here) still gets every event, and holds no connection while it dawdles.
    async with api_factory(database_url, export_chunk_size=10, db_timeout_seconds=1.0) as api:
        alice, _ = await api.user()
        await bulk(api, [alice], 35)
        reader = SlowReader(api, await admin_key(api) | NDJSON)
        task = asyncio.create_task(reader.run())
        await asyncio.wait_for(reader.paused.wait(), 30)
        assert reader.messages[0]["status"] == 200
        assert checked_out(api) == 0
        await asyncio.sleep(1.5)  # longer than the budget
        assert checked_out(api) == 0
        reader.resume.set()
        await asyncio.wait_for(task, 30)
        bodies = [m for m in reader.messages if m["type"] == "http.response.body"]
        assert len(bodies) >= 4  # one write per chunk, at least
        lines = [orjson.loads(line) for line in reader.body().splitlines()]
        assert "error" not in lines[-1], lines[-1]
        assert len(lines) == 35
        assert [x["event_id"] for x in lines] == [e.event_id for e in await logged(api)]


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_the_openapi_document_shows_both_media_types(api: Api) -> None:
    doc = (await api.client.get("/openapi.json")).json()
    ok = doc["paths"][EVENTS]["get"]["responses"]["200"]["content"]
    assert set(ok) == {"application/json", "application/x-ndjson"}
    assert ok["application/json"]["schema"] == {"$ref": "#/components/schemas/EventPageOut"}
    mine = doc["paths"][MINE]["get"]
    assert mine["security"] == [{"bearer": []}]
    assert set(mine["responses"]) == {"200", "400", "401", "413", "503"}


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_an_export_the_database_fails_mid_way_says_so(
    fresh_pg_url: str, api_factory: Callable[..., Any]
) -> None:
    # The answer has started (200): the export ends with one line in the error shape, never
    # as a silently short one.
    async with TcpProxy("127.0.0.1", 5432) as proxy:
        url = via(fresh_pg_url, proxy)
        async with api_factory(url, export_chunk_size=10, db_timeout_seconds=1.0) as api:
            alice, _ = await api.user()
            await bulk(api, [alice], 35)
            reader = SlowReader(api, await admin_key(api) | NDJSON)
            task = asyncio.create_task(reader.run())
            await asyncio.wait_for(reader.paused.wait(), 30)
            await proxy.refuse()
            reader.resume.set()
            await asyncio.wait_for(task, 30)
            await proxy.restore()
            lines = [orjson.loads(line) for line in reader.body().splitlines()]
            newest = [e.event_id for e in await logged(api)][:10]
            assert [x["event_id"] for x in lines[:10]] == newest
            assert lines[10:] == [
                {
                    "error": {
                        "code": "SERVICE_UNAVAILABLE",
                        "message": "The database cannot be reached; retry later.",
                    }
                }
            ]
