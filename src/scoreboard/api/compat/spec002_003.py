"""Specifications 002 and 003: `POST /api/score/update` (both forms on one route), and 003's
`GET /api/scores/top` and `GET /api/scores/me`.

002 authenticates in the body (`{user_id, auth_token, score_increment}`), 003 with a Bearer
header; the success body carries both shapes' fields, and so do errors (see `styles.py`).
A `score_increment` is accepted only within the catalogue's bounds for the action; without one
the catalogue's points are awarded. `Idempotency-Key` or `X-Request-Id` makes a request
idempotent.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query
from pydantic import BaseModel, Field

from scoreboard.api.compat.styles import (
    Error002003,
    Error003,
    error_route,
    seed002_003_style,
    seed003_style,
)
from scoreboard.api.deps import ClientDep, PrincipalDep, ServicesDep, bearer_token
from scoreboard.api.schemas import Strict, errors
from scoreboard.container import Services
from scoreboard.domain.errors import Forbidden
from scoreboard.domain.times import rfc3339
from scoreboard.realtime.dialects_compat import handle_entry
from scoreboard.service.identity import Principal
from scoreboard.service.targets import MAX_LIMIT

update_router = APIRouter(
    tags=["compat: 002, 003"],
    route_class=error_route(seed002_003_style),
    responses=errors(401, 403, 409, 429, 503, model=Error002003),
)
router = APIRouter(
    tags=["compat: 003"], route_class=error_route(seed003_style), responses=errors(model=Error003)
)

OptionalHeader = Annotated[str | None, Header()]


class ScoreUpdateIn(Strict):
    user_id: str | None = Field(None, description="002: must be the token's user")
    auth_token: str | None = Field(None, description="002: the token (else a Bearer header)")
    score_increment: int | None = Field(None, description="within the catalogue's bounds")
    action_type: str | None = Field(None, description="default: the catalogue's default")


class ScoreUpdateOut(BaseModel):
    status: str = "success"
    message: str = "Score updated successfully."
    new_score: int
    userId: str
    newScore: int
    success: bool = True
    idempotent: bool | None = None


class HandleEntryOut(BaseModel):
    userId: str
    handle: str
    score: int
    rank: int


class TopOut(BaseModel):
    top: list[HandleEntryOut]
    asOf: str


class MeOut003(BaseModel):
    userId: str
    handle: str
    score: int
    rank: int | None


async def caller(services: Services, body: ScoreUpdateIn, authorization: str | None) -> Principal:
    """The user of the body's `auth_token` (002) or else of the Bearer header (003)."""
    token = body.auth_token if body.auth_token is not None else bearer_token(authorization)
    principal = await services.identity.authenticate(token)
    if body.user_id is not None and body.user_id != principal.user_id:
        raise Forbidden("user_id is not the user of this token.")
    return principal


@update_router.post(
    "/api/score/update", response_model=ScoreUpdateOut, response_model_exclude_none=True
)
async def score_update(
    services: ServicesDep,
    client: ClientDep,
    body: ScoreUpdateIn | None = None,
    authorization: OptionalHeader = None,
    idempotency_key: OptionalHeader = None,
    x_request_id: OptionalHeader = None,
) -> ScoreUpdateOut:
    """002 and 003: add to the caller's score; the answer carries both specifications' fields."""
    body = body or ScoreUpdateIn()
    principal = await caller(services, body, authorization)
    result = await services.scoring.record(
        principal.user_id,
        body.action_type,
        idempotency_key=idempotency_key if idempotency_key is not None else x_request_id,
        increment=body.score_increment,
        client=client,
    )
    score = result.event.new_score
    replayed = True if result.replayed else None
    return ScoreUpdateOut(
        new_score=score, userId=principal.user_id, newScore=score, idempotent=replayed
    )


@router.get("/api/scores/top", response_model=TopOut, responses=errors(503, model=Error003))
async def scores_top(
    services: ServicesDep, limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 10
) -> TopOut:
    """003: the top `limit` (1–100, default 10), best first (public)."""
    page = await services.board.page("global", limit, 0)
    top = [HandleEntryOut.model_validate(handle_entry(entry)) for entry in page.items]
    return TopOut(top=top, asOf=rfc3339(page.generated_at))


@router.get(
    "/api/scores/me", response_model=MeOut003, responses=errors(401, 403, 503, model=Error003)
)
async def scores_me(principal: PrincipalDep, services: ServicesDep) -> MeOut003:
    """003: the caller's score and rank (`score: 0, rank: null` before the first point)."""
    mine = await services.board.mine("global", principal.user_id, principal.display_name, 0)
    return MeOut003(userId=mine.user_id, handle=mine.display_name, score=mine.score, rank=mine.rank)
