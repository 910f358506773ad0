"""An app per test on real backends, driven through httpx.

Every test taking `api` (or `database_url` + `api_factory`) runs once per backend:
"sqlite" (SQLite + in-process index, broker and limits: the embedded default), "postgresql"
(PostgreSQL + in-process realtime) and "redis" (PostgreSQL + Redis index, broker and limits,
the scaled mode, under a key prefix of its own).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from tests.conftest import lifespan

from scoreboard.app import create_app
from scoreboard.config import Settings
from scoreboard.container import Services

_names = itertools.count()


def make_settings(database_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "data_dir": tmp_path,
        "rate_limit_score": "100000/minute",
        "rate_limit_login": "100000/minute",
        "rate_limit_login_address": "100000/minute",
        # The suite signs up users in bursts on a loaded machine: room for all of them.
        "password_hash_queue": 1000,
        "password_hash_wait_seconds": 30,
        "rate_limit_register": "100000/minute",
        "ws_tick_ms": 10,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class Api:
    """A test client with helpers for the common steps."""

    def __init__(self, client: httpx.AsyncClient, app: FastAPI) -> None:
        self.client = client
        self.app = app

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services

    async def user(self, name: str | None = None) -> tuple[str, dict[str, str]]:
        """Register and log in a fresh user: (user_id, auth headers)."""
        name = name or f"user{next(_names)}"
        r = await self.client.post(
            "/api/v1/auth/register", json={"username": name, "password": "correct horse"}
        )
        assert r.status_code == 201, r.text
        user_id = r.json()["user_id"]
        r = await self.client.post(
            "/api/v1/auth/login", json={"username": name, "password": "correct horse"}
        )
        assert r.status_code == 200, r.text
        return user_id, {"Authorization": f"Bearer {r.json()['access_token']}"}

    async def score(
        self, headers: dict[str, str], action: str = "TASK_COMPLETED", key: str | None = None
    ) -> httpx.Response:
        extra = {"Idempotency-Key": key} if key is not None else {}
        return await self.client.post(
            "/api/v1/scores/events", json={"action_type": action}, headers=headers | extra
        )


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Overrides the root fixture: a fresh database for the backend under test."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'scoreboard.db'}"
    return str(request.getfixturevalue("fresh_pg_url"))


@pytest.fixture
def backend_settings(backend: str, request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """Settings the backend adds: for "redis", the shared Redis with a prefix of its own
    (deleted afterwards) and a short index check, so start-up rebuilds stay quick."""
    if backend != "redis":
        yield {}
        return
    import redis

    url = str(request.getfixturevalue("redis_url"))
    prefix = f"sbtest:{uuid.uuid4().hex[:10]}:"
    yield {"redis_url": url, "redis_prefix": prefix, "index_check_seconds": 0.05}
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def api_factory(tmp_path: Path, backend_settings: dict[str, Any]) -> Callable[..., Any]:
    """`async with api_factory(database_url, **settings) as api:` for tests needing settings."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def factory(database_url: str, **overrides: Any) -> AsyncIterator[Api]:
        values = {**backend_settings, **overrides}
        clock = values.pop("clock", None)
        extra = {} if clock is None else {"clock": clock}
        app = create_app(make_settings(database_url, tmp_path, **values), **extra)
        async with lifespan(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield Api(client, app)

    return factory


@pytest.fixture
async def api(database_url: str, api_factory: Callable[..., Any]) -> AsyncIterator[Api]:
    async with api_factory(database_url) as instance:
        yield instance
