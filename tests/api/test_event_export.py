"""The event-log export (`GET /api/v1/admin/events` with `Accept: application/x-ndjson`):
exactly every page's items, read in chunks of `SCOREBOARD_EXPORT_CHUNK_SIZE`, each its own
short read with its own budget: a slow reader holds no connection, and a database that fails
after the answer started ends the stream with an error line. On SQLite, PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from tests.api.conftest import Api
from tests.api.events_client import (
    EVENTS,
    NDJSON,
    SlowReader,
    admin_key,
    bulk,
    export,
    logged,
    walk,
)
from tests.proxy import TcpProxy, via

from scoreboard.store.event_log import EventQuery


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
