"""Property: for any events at any times, every board and period the service serves equals a
fold of the event log under the ranking rules (API.md sections 1 and 5).

The reference below is written from the contract, not from the service's code: sum or best
of the counted actions' points, per period of the board's timezone, per region the user had
when scoring; order by score, then the earlier time the score was reached, then user id.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.api.clock import FakeClock
from tests.api.conftest import Api, make_settings
from tests.api.test_boards import boards_file
from tests.conftest import lifespan

from scoreboard.app import create_app
from scoreboard.domain.boards import BoardCatalogue

POINTS = {
    "TASK_COMPLETED": 10,
    "DAILY_LOGIN": 5,
    "ACHIEVEMENT_UNLOCKED": 100,
    "level_complete": 100,
}
REGIONS = [None, "eu", "us"]
KEEP_ALL = {"period_retention_days": 100_000}  # plans span years; every period is compared


@dataclass(frozen=True)
class Step:
    user: int
    action: str
    minutes: int  # the clock moves on this much before the event
    region: str | None  # the user's region from this event on ("keep" = unchanged)


steps = st.lists(
    st.builds(
        Step,
        user=st.integers(0, 3),
        action=st.sampled_from(sorted(POINTS)),
        minutes=st.sampled_from([0, 0, 1, 59, 600, 1439, 1440, 3000, 10080, 44640]),
        region=st.sampled_from([*REGIONS, "keep", "keep"]),
    ),
    min_size=1,
    max_size=25,
)


def reference(
    catalogue: BoardCatalogue, log: list[tuple[str, str, int, str | None]]
) -> dict[tuple[str, str, str], list[tuple[str, int]]]:
    """(board, period, region) -> [(user, score)] in rank order, from (user, action, at, region)."""
    held: dict[tuple[str, str, str], dict[str, tuple[int, int]]] = {}
    for user, action, at, region in log:
        points = POINTS[action]
        for board in catalogue:
            if board.actions is not None and action not in board.actions:
                continue
            if board.partition == "region" and region is None:
                continue
            part = (region or "") if board.partition == "region" else ""
            rows = held.setdefault((board.board_id, board.period_id_at(at), part), {})
            old = rows.get(user)
            if board.aggregate == "sum":
                rows[user] = (points + (old[0] if old else 0), at)
            elif old is None or points > old[0]:
                rows[user] = (points, at)
    return {
        view: [
            (u, s)
            for u, (s, _) in sorted(rows.items(), key=lambda r: (-r[1][0], r[1][1], r[0].encode()))
        ]
        for view, rows in held.items()
    }


async def run(api: Api, clock: FakeClock, plan: list[Step]) -> None:
    services = api.services
    users = [
        (await services.store.create_user(f"fold{i}", None, f"Fold {i}")).user_id for i in range(4)
    ]
    regions: list[str | None] = [None] * 4
    log: list[tuple[str, str, int, str | None]] = []
    for step in plan:
        clock.advance(step.minutes * 60)
        if step.region != "keep":
            regions[step.user] = step.region
            await services.store.update_profile(users[step.user], region=step.region or "")
        await services.scoring.record(users[step.user], step.action)
        log.append((users[step.user], step.action, clock(), regions[step.user]))
    expected = reference(services.board.catalogue, log)
    for (scope, period, region), rows in expected.items():
        params = {"scope": scope, "period": period, "limit": 100}
        if region:
            params["region"] = region
        r = await api.client.get("/api/v1/leaderboard", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        got = [(i["user_id"], i["score"]) for i in body["items"]]
        assert got == rows, (scope, period, region)
        assert [i["rank"] for i in body["items"]] == list(range(1, len(rows) + 1))
        assert body["total"] == len(rows)


async def scenario(database_url: str, tmp: Path, plan: list[Step], **extra: Any) -> None:
    clock = FakeClock()
    app = create_app(
        make_settings(database_url, tmp, boards_file=boards_file(tmp), **KEEP_ALL, **extra),
        clock=clock,
    )
    async with lifespan(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            await run(Api(client, app), clock, plan)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=steps)
def test_every_board_equals_the_fold_of_the_log_embedded(plan: list[Step]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/fold.db"
        asyncio.run(scenario(url, Path(tmp), plan))


async def test_every_board_equals_the_fold_of_the_log(
    database_url: str, api_factory: Callable[..., Any], tmp_path: Path
) -> None:
    """The same property on every backend, for a few fixed random plans."""
    rng = random.Random(11)
    plan = [
        Step(
            rng.randrange(4),
            rng.choice(sorted(POINTS)),
            rng.choice([0, 1, 600, 1440, 10080, 44640]),
            rng.choice([*REGIONS, "keep"]),
        )
        for _ in range(60)
    ]
    clock = FakeClock()
    settings = {"boards_file": boards_file(tmp_path), **KEEP_ALL}
    async with api_factory(database_url, clock=clock, **settings) as api:
        await run(api, clock, plan)
