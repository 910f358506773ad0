"""Specification 004: `POST /api/v1/scores/update` and `GET /api/v1/leaderboard/top10`.

Bodies are `{"success": true, "data": ..., ...}`; errors `{"success": false, "error": {code,
message}}` (401 is `UNAUTHORIZED`). Timestamps are epoch milliseconds.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Header
from pydantic import BaseModel, Field

from scoreboard.api.compat.styles import Error004, error_route, seed004_style
from scoreboard.api.deps import ClientDep, PrincipalDep, ServicesDep
from scoreboard.api.schemas import Strict, errors
from scoreboard.realtime.dialects_compat import epoch_ms, leaderboard_entry

router = APIRouter(
    tags=["compat: 004"], route_class=error_route(seed004_style), responses=errors(model=Error004)
)

TOP = 10
# The board is read live, never from a TTL cache: a client may treat it as fresh for 0 s.
CACHE_TTL = 0


class ScoreUpdate004In(Strict):
    action_type: str | None = Field(None, description="default: the catalogue's default")
    score_increment: int | None = Field(None, description="within the catalogue's bounds")


class ScoreUpdateData(BaseModel):
    user_id: str
    previous_score: int
    new_score: int
    rank_change: int
    current_rank: int | None


class ScoreUpdate004Out(BaseModel):
    success: bool = True
    data: ScoreUpdateData
    timestamp: int


class LeaderboardEntry004(BaseModel):
    rank: int
    user_id: str
    username: str
    score: int
    avatar_url: str | None


class Top10Data(BaseModel):
    leaderboard: list[LeaderboardEntry004]
    last_updated: int
    cache_ttl: int


class Top10Out(BaseModel):
    success: bool = True
    data: Top10Data


@router.post(
    "/api/v1/scores/update",
    response_model=ScoreUpdate004Out,
    responses=errors(401, 403, 409, 429, 503, model=Error004),
)
async def update_score(
    body: ScoreUpdate004In,
    principal: PrincipalDep,
    services: ServicesDep,
    client: ClientDep,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> ScoreUpdate004Out:
    """004: add `score_increment` (within the catalogue's bounds for `action_type`)."""
    result = await services.scoring.record_moving(
        principal.user_id,
        body.action_type,
        idempotency_key=idempotency_key,
        increment=body.score_increment,
        client=client,
    )
    data = ScoreUpdateData(
        user_id=principal.user_id,
        previous_score=result.previous_score,
        new_score=result.event.new_score,
        rank_change=result.rank_change,
        current_rank=result.rank,
    )
    return ScoreUpdate004Out(data=data, timestamp=time.time_ns() // 1_000_000)


@router.get(
    "/api/v1/leaderboard/top10", response_model=Top10Out, responses=errors(503, model=Error004)
)
async def top10(services: ServicesDep) -> Top10Out:
    """004: the top 10 with names and avatars (public)."""
    page = await services.board.page("global", TOP, 0)
    urls = await services.avatars.avatars(entry.user_id for entry in page.items)
    board = [
        LeaderboardEntry004.model_validate(leaderboard_entry(entry, urls[entry.user_id]))
        for entry in page.items
    ]
    data = Top10Data(
        leaderboard=board, last_updated=epoch_ms(page.generated_at), cache_ttl=CACHE_TTL
    )
    return Top10Out(data=data)
