"""Issue 9 item 2: a client's offset never turns into a rank-index failure.

On PostgreSQL + Redis, reads with offsets past what SQL or Redis take as an argument were sent
to Redis, failed there, marked the shared index unusable and started a rebuild. Now the bound
is the service's (400 before any backend is asked) and a bad argument is never a failure."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from scoreboard.domain.errors import ValidationFailed
from scoreboard.service.targets import MAX_OFFSET

from .test_upkeep import instance, shared  # noqa: F401  (fixture)

HUGE = [2**63 - 1, 2**63, 10**30, MAX_OFFSET + 1, -1]


async def test_huge_offsets_are_refused_and_the_index_stays_healthy(
    fresh_pg_url: str,
    tmp_path: Path,
    shared: dict[str, Any],  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with instance(fresh_pg_url, tmp_path, **shared) as api:
        _, headers = await api.user()
        assert (await api.score(headers)).status_code == 201
        index = api.services.board.default_index
        marker_before, _ = await index.state()  # type: ignore[attr-defined]
        assert api.services.board.index_ready and marker_before is not None
        caplog.set_level(logging.WARNING)
        for offset in HUGE * 4:
            r = await api.client.get(f"/api/v1/leaderboard?offset={offset}&limit=100")
            assert r.status_code == 400, (offset, r.text)
            error = r.json()["error"]
            assert error["code"] == "VALIDATION_FAILED"
            assert error["details"][0]["field"] == "offset"
        for offset in HUGE:  # the service's own bound, whoever calls it (also the live path)
            with pytest.raises(ValidationFailed):
                await api.services.board.page("global", 10, offset)
            with pytest.raises(ValidationFailed):
                await api.services.board.top("global", 10, offset)
        for path in ("/api/scores/top?limit=100", f"/api/v1/leaderboard?offset={MAX_OFFSET}"):
            assert (await api.client.get(path)).status_code == 200
        await api.services.board.maintain()
        marker_after, _ = await index.state()  # type: ignore[attr-defined]
        assert api.services.board.index_ready, "a client's offset marked the index unusable"
        assert marker_after == marker_before, "a client's offset caused a rebuild"
        noisy = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert noisy == []


async def test_the_index_refuses_a_range_redis_cannot_take_without_a_round_trip(
    fresh_pg_url: str,
    tmp_path: Path,
    shared: dict[str, Any],  # noqa: F811
) -> None:
    """The RankIndex contract: ValueError for the caller's argument, raised before Redis."""
    async with instance(fresh_pg_url, tmp_path, **shared) as api:
        index = api.services.board.default_index
        for offset in (2**63 - 1, 2**63, 10**30, -1):
            with pytest.raises(ValueError):
                await index.page(10, offset)
        assert (await index.page(10, 2**62))[0] == []
