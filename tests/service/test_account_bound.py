"""The bound on a deleted account (docs/SECURITY.md, "Tokens and accounts"): refused at once by
the process that deleted it and by every write anywhere; on reads in another process within
`account_cache_seconds`. Two app instances on one PostgreSQL database and one Redis (the scaled
deployment) stand for two processes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from tests.conftest import lifespan

from scoreboard.app import create_app
from scoreboard.config import Settings
from scoreboard.service.identity import AccountCache
from scoreboard.store.base import UserRecord

from .test_token_cache import Clock


@asynccontextmanager
async def instance(url: str, data_dir: Path, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    values: dict[str, Any] = {
        "database_url": url,
        "data_dir": data_dir,  # one data dir: both instances use one generated JWT secret
        "rate_limit_score": "100000/minute",
        "rate_limit_register": "100000/minute",
        **overrides,
    }
    app = create_app(Settings(_env_file=None, **values))  # type: ignore[call-arg]
    async with lifespan(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


async def test_a_deleted_account_across_two_instances(
    fresh_pg_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    bound = 1.0
    shared = {"redis_url": redis_url, "redis_prefix": redis_prefix, "index_check_seconds": 0.05}
    async with (
        instance(fresh_pg_url, tmp_path, account_cache_seconds=bound, **shared) as one,
        instance(fresh_pg_url, tmp_path, account_cache_seconds=bound, **shared) as two,
    ):
        account = {"username": "leaving", "password": "correct horse"}
        assert (await one.post("/api/v1/auth/register", json=account)).status_code == 201
        login = await one.post("/api/v1/auth/login", json=account)
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        event = {"action_type": "TASK_COMPLETED"}
        assert (
            await two.post("/api/v1/scores/events", json=event, headers=auth)
        ).status_code == 201
        assert (await two.get("/api/v1/leaderboard/me", headers=auth)).status_code == 200

        assert (await one.delete("/api/v1/users/me", headers=auth)).status_code == 204
        assert (await one.get("/api/v1/leaderboard/me", headers=auth)).status_code == 401
        # The other instance still knows the account, but its writes are refused at once.
        refused = await two.post("/api/v1/scores/events", json=event, headers=auth)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "UNAUTHENTICATED"
        for client in (one, two):
            board = (await client.get("/api/v1/leaderboard")).json()
            assert board["items"] == []  # the one event before the deletion left with the user
        # Reads there stop within the bound.
        await asyncio.sleep(bound + 0.05)
        assert (await two.get("/api/v1/leaderboard/me", headers=auth)).status_code == 401


def user(user_id: str) -> UserRecord:
    return UserRecord(user_id, user_id, user_id, None, datetime.now(UTC))


async def test_an_account_is_kept_within_the_bound_and_read_again_after() -> None:
    clock = Clock(100.0)
    cache = AccountCache(30.0, clock=clock)
    reads: list[str] = []

    async def load(user_id: str) -> UserRecord | None:
        reads.append(user_id)
        return user(user_id)

    for _ in range(3):
        await cache.get("u1", load)
    assert reads == ["u1"]
    clock.now = 100.0 + 30.0  # the bound: never served at or past it
    await cache.get("u1", load)
    assert reads == ["u1", "u1"]


async def test_lifetimes_are_spread_within_the_bound() -> None:
    clock = Clock(0.0)
    cache = AccountCache(40.0, clock=clock)

    async def load(user_id: str) -> UserRecord | None:
        return user(user_id)

    for i in range(200):
        await cache.get(f"u{i}", load)
    reads: list[str] = []

    async def counted(user_id: str) -> UserRecord | None:
        reads.append(user_id)
        return user(user_id)

    clock.now = 29.9  # before 75% of the bound: everything still cached
    for i in range(200):
        await cache.get(f"u{i}", counted)
    assert reads == []
    clock.now = 35.0  # some entries expired, others not: the reloads are spread out
    for i in range(200):
        await cache.get(f"u{i}", counted)
    assert 0 < len(reads) < 200
