"""Issue 13: every metric docs/OPERATIONS.md lists really moves, read from `/metrics`.

In-process apps (httpx over ASGI) for the HTTP side, a real server and a WebSocket client for
the live side, PostgreSQL through a proxy the test cuts for database errors, and a throwaway
address for Redis errors (a rate limiter whose Redis is gone).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.api.conftest import make_settings
from tests.conftest import lifespan
from tests.e2e.client import LiveClient, new_user
from tests.e2e.conftest import FAST
from tests.e2e.server import ServerProcess
from tests.proxy import TcpProxy, upstream, via

from scoreboard.app import create_app
from scoreboard.container import Services

EVENTS = "/api/v1/scores/events"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, frozenset(s.labels.items()))] = s.value
    return found


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def scrape(http: httpx.AsyncClient) -> Samples:
    r = await http.get("/metrics")
    assert r.status_code == 200
    return samples(r.text)


async def login(http: httpx.AsyncClient, name: str) -> dict[str, str]:
    body = {"username": name, "password": "correct horse"}
    assert (await http.post("/api/v1/auth/register", json=body)).status_code == 201
    r = await http.post("/api/v1/auth/login", json=body)
    assert r.status_code == 200
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def client_of(settings: Any, *, hot_routes: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, hot_routes=hot_routes)
    async with lifespan(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            http.services = app.state.services  # type: ignore[attr-defined]
            yield http


@pytest.fixture(params=[True, False], ids=["hot", "fastapi"])
async def http(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'scoreboard.db'}",
        tmp_path,
        rate_limit_score="5/minute",
        rate_limit_login="4/minute",
    )
    async for client in client_of(settings, hot_routes=request.param):
        yield client


async def test_score_events_by_action_and_outcome(http: httpx.AsyncClient) -> None:
    auth = await login(http, "alice")
    once = {**auth, "Idempotency-Key": "k1"}
    task = {"action_type": "TASK_COMPLETED"}
    assert (await http.post(EVENTS, json=task, headers=once)).status_code == 201
    assert (await http.post(EVENTS, json=task, headers=once)).status_code == 200  # replay
    daily = {"action_type": "DAILY_LOGIN"}
    assert (await http.post(EVENTS, json=daily, headers=once)).status_code == 409
    assert (await http.post(EVENTS, json={"action_type": "nope"}, headers=auth)).status_code == 400
    # The compat route counts too (spec 002/003).
    r = await http.post("/api/score/update", json={}, headers=auth)
    assert r.status_code == 200, r.text
    statuses = [(await http.post(EVENTS, json=task, headers=auth)).status_code for _ in range(5)]
    assert 429 in statuses
    found = await scrape(http)
    name = "scoreboard_score_events_total"
    assert value(found, name, action="TASK_COMPLETED", outcome="recorded") == 2 + statuses.count(
        201
    )
    assert value(found, name, action="TASK_COMPLETED", outcome="replayed") == 1
    assert value(found, name, action="DAILY_LOGIN", outcome="conflict") == 1
    assert value(found, name, action="unknown", outcome="refused") == 1
    assert value(found, name, action="TASK_COMPLETED", outcome="rate_limited") == statuses.count(
        429
    )
    assert value(found, "scoreboard_rate_limited_total", limit="score") == statuses.count(429)
    assert value(found, "scoreboard_commit_seconds_count") >= 2
    assert value(found, "scoreboard_commit_batch_size_count") >= 2


async def test_rate_limited_login_and_static_metrics(http: httpx.AsyncClient) -> None:
    await login(http, "bob")
    body = {"username": "bob", "password": "wrong password"}
    statuses = [(await http.post("/api/v1/auth/login", json=body)).status_code for _ in range(5)]
    assert 429 in statuses
    found = await scrape(http)
    assert value(found, "scoreboard_rate_limited_total", limit="login-user-ip") == statuses.count(
        429
    )
    assert any(name == "scoreboard_build_info" and v == 1 for (name, _), v in found.items())
    assert value(found, "process_cpu_seconds_total") > 0
    assert value(found, "process_resident_memory_bytes") > 0
    # The start-up rebuilds (one per view: the four default boards' current periods), then
    # one asked for.
    assert value(found, "scoreboard_index_rebuilds_total", outcome="done") == 4
    services: Services = http.services  # type: ignore[attr-defined]
    await services.board.keeper.rebuild()
    found = await scrape(http)
    assert value(found, "scoreboard_index_rebuilds_total", outcome="done") == 5


async def test_database_errors_counted(tmp_path: Path, fresh_pg_url: str) -> None:
    async with TcpProxy(*upstream(fresh_pg_url, 5432)) as proxy:
        settings = make_settings(via(fresh_pg_url, proxy), tmp_path, db_timeout_seconds=1)
        async for http in client_of(settings):
            auth = await login(http, "carol")
            task = {"action_type": "TASK_COMPLETED"}
            assert (await http.post(EVENTS, json=task, headers=auth)).status_code == 201
            await proxy.refuse()
            r = await http.post(EVENTS, json=task, headers=auth)
            assert r.status_code == 503
            await proxy.restore()
            found = await scrape(http)
            errors = {
                dict(labels)["operation"]: v
                for (name, labels), v in found.items()
                if name == "scoreboard_backend_errors_total" and ("backend", "database") in labels
            }
            assert errors.get("record_events", 0) >= 1, errors
            assert value(found, "scoreboard_score_events_total", **unavailable()) == 1


def unavailable() -> dict[str, str]:
    return {"action": "TASK_COMPLETED", "outcome": "unavailable"}


async def test_redis_limiter_errors_counted(tmp_path: Path) -> None:
    """A Redis that is not there: the limiter fails open, each failure counted."""
    async with TcpProxy("127.0.0.1", 6379) as proxy:
        settings = make_settings(
            f"sqlite+aiosqlite:///{tmp_path / 'scoreboard.db'}",
            tmp_path,
            redis_url=f"redis://127.0.0.1:{proxy.port}/0",
            redis_prefix=f"sbtest:metrics{time.time_ns()}:",
            redis_timeout_seconds=0.5,
        )
        async for http in client_of(settings):
            auth = await login(http, "dave")
            await proxy.refuse()
            r = await http.post(EVENTS, json={"action_type": "TASK_COMPLETED"}, headers=auth)
            assert r.status_code in (201, 503)
            found = await scrape(http)
            await proxy.restore()
            assert value(found, "scoreboard_backend_errors_total", **redis_limiter()) >= 1


def redis_limiter() -> dict[str, str]:
    return {"backend": "redis", "operation": "rate_limit"}


@pytest.fixture
def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:  # type: ignore[misc]
    process = ServerProcess(
        tmp_path / "srv", {"SCOREBOARD_DATA_DIR": str(tmp_path / "data"), **FAST}
    )
    yield process.start()
    process.stop()


@pytest.mark.e2e
async def test_live_metrics(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        _, token = await new_user(http, "metrics")
        live = await LiveClient.open(f"{server.ws_url}/ws/leaderboard?token={token}")
        try:
            await live.wait_for(lambda m: m.get("type") == "snapshot")
            found = samples((await http.get("/metrics")).text)
            assert value(found, "scoreboard_ws_connections") == 1
            snapshot_frames = value(found, "scoreboard_ws_frames_total")
            assert snapshot_frames >= 1  # the new client's snapshot
            assert value(found, "scoreboard_fanout_seconds_count") == 0
            auth = {"Authorization": f"Bearer {token}"}
            r = await http.post(EVENTS, json={"action_type": "TASK_COMPLETED"}, headers=auth)
            assert r.status_code == 201
            await live.wait_for(lambda m: m.get("type") != "snapshot")
            await asyncio.sleep(0.1)
            found = samples((await http.get("/metrics")).text)
            assert value(found, "scoreboard_ws_frames_total") > snapshot_frames
            assert value(found, "scoreboard_fanout_seconds_count") >= 1
        finally:
            await live.close()
        await asyncio.sleep(0.2)
        found = samples((await http.get("/metrics")).text)
        assert value(found, "scoreboard_ws_connections") == 0
