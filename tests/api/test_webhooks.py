"""Webhooks through the app (API.md section 6): exactly one `period.closed` per board and
period across three app instances on one PostgreSQL and across restarts, with a clock the
test moves; the delivery log's route and its refusals; nothing by time without a URL."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from tests.api.clock import FakeClock
from tests.api.conftest import Api, make_settings
from tests.conftest import lifespan
from tests.service.webhook_receiver import Receiver, receiving

from scoreboard.api.deps import get_admin
from scoreboard.app import create_app
from scoreboard.domain.times import utcnow
from scoreboard.store.outbox import Attempt
from scoreboard.store.schema import webhook_outbox

SECRET = "whsec-apps"


@asynccontextmanager
async def app_on(url: str, tmp_path: Path, clock: FakeClock, **settings: Any) -> AsyncIterator[Api]:
    app = create_app(make_settings(url, tmp_path, **settings), clock=clock)
    async with lifespan(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Api(client, app)


async def outbox(api: Api) -> list[Any]:
    store: Any = api.services.store
    async with store._engines.read.connect() as conn:
        return list(await conn.execute(sa.select(webhook_outbox)))


def closed(receiver: Receiver) -> Counter[tuple[str, str]]:
    return Counter(
        (p["data"]["scope"], p["data"]["period"]["id"]) for p in receiver.of_type("period.closed")
    )


async def all_delivered(api: Api) -> list[Any]:
    """The outbox, once every row of it is delivered (a deadline, not a timing)."""
    for _ in range(1000):
        rows = await outbox(api)
        if rows and all(r.delivered_at is not None for r in rows):
            return rows
        await asyncio.sleep(0.02)
    raise AssertionError(f"not all delivered: {rows}")


def delivered_count(metrics: str) -> float:
    for line in metrics.splitlines():
        if line.startswith('scoreboard_webhook_deliveries_total{outcome="delivered"}'):
            return float(line.split()[-1])
    return 0.0


async def test_one_period_closed_per_board_and_period_across_three_apps_and_restarts(
    fresh_pg_url: str, tmp_path: Path
) -> None:
    clock = FakeClock(datetime(2026, 12, 2, 12, tzinfo=UTC))  # a Wednesday
    hooks = {"webhook_secret": SECRET}
    with receiving(SECRET) as receiver:
        hooks["webhook_url"] = receiver.url
        async with AsyncExitStack() as stack:
            apps = [
                await stack.enter_async_context(app_on(fresh_pg_url, tmp_path, clock, **hooks))
                for _ in range(3)
            ]
            # Start-up: the periods that ended while no process ran (each board's previous).
            started = {("daily", "2026-12-01"), ("weekly", "2026-W48"), ("monthly", "2026-11")}
            await receiver.wait_for(lambda: set(closed(receiver)) == started)
            users = [await apps[n].user() for n in range(3)]
            for n, (_, headers) in enumerate(users):
                for _ in range(n + 1):  # user n scores n + 1 times, on instance n
                    assert (await apps[n].score(headers)).status_code == 201
            # The day ends; a write is settled within twice the database timeout after it.
            clock.set(datetime(2026, 12, 3, 0, 0, 5, tzinfo=UTC))
            await receiver.wait_for(lambda: ("daily", "2026-12-02") in closed(receiver))
            await asyncio.gather(*(a.services.webhooks.closer.check() for a in apps))  # type: ignore[union-attr]
            await all_delivered(apps[0])
            metrics = [(await a.client.get("/metrics")).text for a in apps]
        (day,) = [
            p
            for p in receiver.of_type("period.closed")
            if p["data"]["scope"] == "daily" and p["data"]["period"]["id"] == "2026-12-02"
        ]
        assert day["data"]["period"] == {
            "id": "2026-12-02",
            "starts_at": "2026-12-02T00:00:00.000Z",
            "ends_at": "2026-12-03T00:00:00.000Z",
        }
        assert [(e["rank"], e["user_id"], e["score"]) for e in day["data"]["top"]] == [
            (1, users[2][0], 30),
            (2, users[1][0], 20),
            (3, users[0][0], 10),
        ]
        assert sum(delivered_count(m) for m in metrics) == len(receiver.delivered) == 4

        # Everything stopped; a day ends while nothing runs; one process starts again.
        clock.set(datetime(2026, 12, 4, 0, 0, 10, tzinfo=UTC))
        async with app_on(fresh_pg_url, tmp_path, clock, **hooks) as again:
            await receiver.wait_for(lambda: ("daily", "2026-12-03") in closed(receiver))
            assert await again.services.webhooks.closer.check() == []  # type: ignore[union-attr]
            rows = await all_delivered(again)
    assert receiver.bad_signatures == 0
    assert closed(receiver) == Counter(
        {key: 1 for key in [*started, ("daily", "2026-12-02"), ("daily", "2026-12-03")]}
    )
    assert len(rows) == 5 and set(receiver.attempts.values()) == {1}


async def test_without_a_url_nothing_is_enqueued_by_time(
    database_url: str, api_factory: Callable[..., Any]
) -> None:
    clock = FakeClock(datetime(2026, 12, 2, 12, tzinfo=UTC))
    async with api_factory(database_url, clock=clock) as api:
        webhooks = api.services.webhooks
        assert not webhooks.enabled and webhooks.closer is None
        assert await webhooks.enqueue("user.banned", {"user_id": "x"}) is None
        assert await outbox(api) == []  # not even the previous periods at start-up


async def test_the_delivery_log_is_for_admins(api: Api) -> None:
    r = await api.client.get("/api/v1/admin/webhooks")
    assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHENTICATED"
    r = await api.client.get("/api/v1/admin/webhooks", headers={"Authorization": "Bearer x"})
    assert r.status_code == 401
    _, headers = await api.user()
    r = await api.client.get("/api/v1/admin/webhooks", headers=headers)
    assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN"


async def test_the_delivery_log_pages_newest_first(api: Api) -> None:
    """As an admin (principals have no roles yet: the guard is stood in for)."""
    user_id, headers = await api.user()
    principal = await api.services.identity.authenticate(headers["Authorization"][7:])
    api.app.dependency_overrides[get_admin] = lambda: principal
    store = api.services.store
    webhook_id = await store.enqueue_webhook("user.banned", {"user_id": user_id}) or ""
    for n in (1, 2, 3):
        failed = Attempt(webhook_id, n, utcnow(), 503, "HTTP 503", 7, False, utcnow())
        await store.settle_webhook(failed)
    r = await api.client.get("/api/v1/admin/webhooks?limit=2", headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [i["attempt"] for i in body["items"]] == [3, 2]
    assert body["items"][0] == {
        "delivery_id": body["items"][0]["delivery_id"],
        "webhook_id": webhook_id,
        "type": "user.banned",
        "attempt": 3,
        "at": body["items"][0]["at"],
        "status_code": 503,
        "error": "HTTP 503",
        "duration_ms": 7,
    }
    r = await api.client.get(
        "/api/v1/admin/webhooks", params={"cursor": body["next_cursor"]}, headers=headers
    )
    assert [i["attempt"] for i in r.json()["items"]] == [1] and r.json()["next_cursor"] is None
    for query in ("limit=0", "limit=101", "cursor=abc", "cursor=" + "9" * 19):
        r = await api.client.get(f"/api/v1/admin/webhooks?{query}", headers=headers)
        assert r.status_code == 400 and r.json()["error"]["code"] == "VALIDATION_FAILED", query
