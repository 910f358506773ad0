"""Property: after any sequence of score events, voids, adjustments, bans, unbans, quarantines
and releases at any times, every board and period the service serves equals a fold of the
audit log read back from the database (API.md sections 5 and 6; the reference is
tests/api/moderation_model.py, written from the contract).

Two ways to fail: the service disagrees with the fold of its own log, or the log disagrees
with what the test did (the test's model of every accepted event, void and status). Each
example runs on a fresh database (and Redis prefix), on every backend; the examples are
derandomized, so a run is repeatable.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from tests.api.clock import FakeClock
from tests.api.conftest import make_settings
from tests.api.moderation_model import Rows, fold_log, own_rank, public, read_log
from tests.api.moderation_steps import Adjust, Model, Moderate, Score, Step, Void, code, step
from tests.api.test_boards import boards_file
from tests.conftest import PG_ADMIN_URL, _pg_admin, lifespan

from scoreboard.app import create_app
from scoreboard.container import Services

USERS = 4
REGIONS = [None, "eu", "us"]
ACTIONS = ["TASK_COMPLETED", "DAILY_LOGIN", "ACHIEVEMENT_UNLOCKED", "level_complete"]
# The four default boards, and custom ones: a region board, a `best` board of two actions in
# Paris time, a `best` board of every action (adjustments count on it) in New York time, and a
# `sum` board of two actions (adjustments do not count on it).
BOARDS = {
    "boards": [
        {"board_id": "global", "title": "All time"},
        {"board_id": "daily", "window": "daily"},
        {"board_id": "weekly", "window": "weekly"},
        {"board_id": "monthly", "window": "monthly"},
        {"board_id": "weekly_region", "window": "weekly", "partition": "region"},
        {
            "board_id": "quiz_best",
            "window": "monthly",
            "aggregate": "best",
            "actions": ["ACHIEVEMENT_UNLOCKED", "level_complete"],
            "timezone": "Europe/Paris",
        },
        {
            "board_id": "best_any",
            "window": "daily",
            "aggregate": "best",
            "timezone": "America/New_York",
        },
        {"board_id": "chores", "window": "weekly", "actions": ["TASK_COMPLETED", "DAILY_LOGIN"]},
    ]
}
MINUTES = [0, 0, 1, 59, 600, 1439, 1440, 3000, 10080, 44640]
SETTINGS = {"period_retention_days": 100_000, "account_cache_seconds": 0}

user_ids = st.integers(0, USERS - 1)
scores = st.builds(
    Score,
    user=user_ids,
    action=st.sampled_from(ACTIONS),
    minutes=st.sampled_from(MINUTES),
    region=st.sampled_from([*REGIONS, "keep", "keep", "keep"]),
)
plans = st.lists(
    st.one_of(
        scores,
        scores,
        st.builds(Void, pick=st.integers(0, 1000)),
        st.builds(
            Adjust,
            user=user_ids,
            points=st.sampled_from([-500, -15, -1, 1, 7, 300]),
            minutes=st.sampled_from(MINUTES),
        ),
        st.builds(
            Moderate,
            user=user_ids,
            action=st.sampled_from(["ban", "ban", "quarantine", "quarantine", "unban", "release"]),
        ),
    ),
    min_size=10,
    max_size=40,
)


async def check(
    client: httpx.AsyncClient, clock: FakeClock, services: Services, database_url: str, model: Model
) -> None:
    log, statuses = await read_log(database_url)
    # The log agrees with the model: every accepted event, in order, and every status.
    assert len(log) == len(model.events), (log, model.events)
    for logged, expected in zip(log, model.events, strict=True):
        assert logged.same_as(expected), (logged, expected)
    assert {u: statuses[u] for u in model.users} == model.statuses
    folded = fold_log(services.board.catalogue, log)
    for board in services.board.catalogue:
        periods = {p for (b, p, _) in folded if b == board.board_id}
        asked = ["current", *(["previous"] if board.window != "all_time" else []), *sorted(periods)]
        regions = ["eu", "us"] if board.partition == "region" else [None]
        for period in asked:
            for region in regions:
                resolved = board.resolve(period, clock()).id
                rows = folded.get((board.board_id, resolved, region or ""), {})
                params = {"scope": board.board_id, "period": period, "limit": 100}
                params |= {"region": region} if region else {}
                r = await client.get("/api/v1/leaderboard", params=params)
                assert r.status_code == 200, r.text
                body = r.json()
                assert body["period"]["id"] == resolved
                got = [(i["user_id"], i["score"]) for i in body["items"]]
                want = public(rows, statuses)
                assert got == want, (board.board_id, period, region, log)
                assert [i["rank"] for i in body["items"]] == list(range(1, len(want) + 1))
                assert body["total"] == len(want)
    for (scope, period, region), rows in folded.items():
        for user in rows:  # whoever has a row there (a banned user too); else 0, unranked
            await check_me(client, model, statuses, scope, period, region, rows, user)


async def check_me(
    client: httpx.AsyncClient,
    model: Model,
    statuses: dict[str, str],
    scope: str,
    period: str,
    region: str,
    rows: Rows,
    user: str,
) -> None:
    params = {"scope": scope, "period": period, "around": 1}
    params |= {"region": region} if region else {}
    r = await client.get("/api/v1/leaderboard/me", params=params, headers=model.tokens[user])
    if statuses[user] == "banned":  # a ban ends their sessions (account cache: 0 s here)
        assert (r.status_code, code(r)) == (403, "FORBIDDEN"), r.text
        return
    assert r.status_code == 200, r.text
    me = r.json()
    rank = own_rank(rows, statuses, user)
    score = rows[user][0] if user in rows else 0
    assert (me["score"], me["rank"]) == (score, rank), (scope, period, region, user)
    around = [(e["user_id"], e["rank"]) for e in me["around_me"]]
    if statuses[user] == "quarantined":
        assert around == ([] if rank is None else [(user, rank)])
    else:
        assert (rank is None) == (around == []) and (rank is None or (user, rank) in around)


async def scenario(database_url: str, tmp: Path, extra: dict[str, Any], plan: list[Step]) -> None:
    clock = FakeClock()
    values = {"boards_file": boards_file(tmp, BOARDS), **SETTINGS, **extra}
    app = create_app(make_settings(database_url, tmp, **values), clock=clock)
    async with lifespan(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            services: Services = app.state.services
            key, _ = await services.apikeys.create("fold-admin", role="admin")
            admin = {"Authorization": f"Bearer {key}"}
            records = [
                await services.store.create_user(f"mod{i}", None, f"Mod {i}") for i in range(USERS)
            ]
            model = Model(
                users=[u.user_id for u in records],
                tokens={
                    u.user_id: {"Authorization": f"Bearer {services.identity.issue(u)[0]}"}
                    for u in records
                },
                regions=[None] * USERS,
                statuses={u.user_id: "active" for u in records},
            )
            for s in plan:
                await step(client, admin, clock, services, model, s)
            for status in sorted(set(model.statuses.values())):
                event(f"a user {status} at the end")
            await check(client, clock, services, database_url, model)


Fresh = Callable[[Path], AbstractAsyncContextManager[tuple[str, dict[str, Any]]]]


@pytest.fixture
def fresh(backend: str, request: pytest.FixtureRequest) -> Fresh:
    """Per example: a fresh database for the backend (and a Redis prefix of its own)."""
    redis_url = str(request.getfixturevalue("redis_url")) if backend == "redis" else None
    if backend != "sqlite":
        request.getfixturevalue("pg_database_url")  # PostgreSQL is there (or skip)

    @asynccontextmanager
    async def make(tmp: Path) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        if backend == "sqlite":
            yield f"sqlite+aiosqlite:///{tmp / 'fold.db'}", {}
            return
        name = f"scoreboard_t_{uuid.uuid4().hex[:10]}"
        await _pg_admin(f'CREATE DATABASE "{name}"')
        netloc = PG_ADMIN_URL.split("://", 1)[1].rsplit("/", 1)[0]
        extra: dict[str, Any] = {}
        if redis_url is not None:
            prefix = f"sbtest:{uuid.uuid4().hex[:10]}:"
            extra = {"redis_url": redis_url, "redis_prefix": prefix, "index_check_seconds": 0.05}
        try:
            yield f"postgresql+asyncpg://{netloc}/{name}", extra
        finally:
            if redis_url is not None:
                await _drop_prefix(redis_url, extra["redis_prefix"])
            await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return make


async def _drop_prefix(url: str, prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def one_example(fresh: Fresh, plan: list[Step]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with fresh(Path(tmp)) as (url, extra):
            await scenario(url, Path(tmp), extra, plan)


# Each example starts a fresh service on a fresh database: a few seconds on a server backend.
EXAMPLES = {"sqlite": 10, "postgresql": 5, "redis": 5}
# Found by this test: a quarantined user's write on a view of a later period (no tombstone
# there) put them on that public board.
QUARANTINED_LATER = [
    Score(user=0, action="TASK_COMPLETED", minutes=0, region=None),
    Moderate(user=0, action="quarantine"),
    Score(user=1, action="TASK_COMPLETED", minutes=1440, region=None),
    Score(user=0, action="TASK_COMPLETED", minutes=0, region=None),
    Adjust(user=0, points=7, minutes=0),
    Void(pick=4),
]


def test_every_board_equals_the_fold_of_the_audit_log(backend: str, fresh: Fresh) -> None:
    @settings(
        max_examples=EXAMPLES[backend],
        deadline=None,
        derandomize=True,  # the same examples every run
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(plan=plans)
    @example(plan=QUARANTINED_LATER)
    def holds(plan: list[Step]) -> None:
        asyncio.run(one_example(fresh, plan))

    holds()
