"""Canonical API, `/api/v1` (API.md section 2). Handlers: parse, one service call, shape."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse

from scoreboard.api.deps import ClientDep, PrincipalDep, ServicesDep
from scoreboard.api.schemas import (
    ActionOut,
    EntryOut,
    LeaderboardOut,
    LoginIn,
    MeOut,
    RegisterIn,
    ScoreEventIn,
    ScoreEventOut,
    TokenOut,
    UserOut,
    errors,
)
from scoreboard.api.sessions import token_out
from scoreboard.api.text import CheckedRoute
from scoreboard.domain.times import rfc3339
from scoreboard.service.scoring import ScoreResult
from scoreboard.service.targets import MAX_AROUND, MAX_LIMIT, MAX_OFFSET

router = APIRouter(prefix="/api/v1", route_class=CheckedRoute)

# The service checks these bounds (also for the live endpoints); declared here so that the
# OpenAPI document states them.
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]
Around = Annotated[int, Query(ge=0, le=MAX_AROUND)]
Scope = Annotated[str, Query(description="A board id (`GET /api/v1/boards`)")]
PeriodParam = Annotated[
    str | None,
    Query(max_length=16, description="current (default), previous, or an id like 2026-W49"),
]
RegionParam = Annotated[
    str | None, Query(max_length=64, description="Required on a board partitioned by region")
]


def score_event_body(result: ScoreResult) -> dict[str, object]:
    """The canonical event response; replays carry `idempotent: true`."""
    event = result.event
    body: dict[str, object] = {
        "event_id": event.event_id,
        "user_id": event.user_id,
        "action_type": event.action_type,
        "awarded_points": event.points,
        "new_score": event.new_score,
        "rank": result.rank,
        "processed_at": rfc3339(event.created_at),
        "boards": [
            {"scope": b.scope, "period": b.period, "score": b.score, "rank": b.rank}
            for b in result.boards
        ],
    }
    if result.replayed:
        body["idempotent"] = True
    return body


@router.post(
    "/auth/register",
    status_code=201,
    response_model=UserOut,
    tags=["identity"],
    responses=errors(409, 429, 503),
)
async def register(body: RegisterIn, services: ServicesDep, client: ClientDep) -> UserOut:
    """Create a user account."""
    user = await services.identity.register(
        body.username, body.password, body.display_name, client=client
    )
    return UserOut(user_id=user.user_id, username=user.username, display_name=user.display_name)


@router.post(
    "/auth/login", response_model=TokenOut, tags=["identity"], responses=errors(401, 429, 503)
)
async def login(body: LoginIn, services: ServicesDep, client: ClientDep) -> TokenOut:
    """Exchange username and password for a bearer token and a refresh token (rate limited)."""
    return token_out(await services.sessions.login(body.username, body.password, client=client))


@router.delete(
    "/users/me", status_code=204, tags=["identity"], responses=errors(401, 403, 404, 503)
)
async def delete_me(principal: PrincipalDep, services: ServicesDep) -> Response:
    """Delete your account: you leave every leaderboard at once; your events stay audited."""
    await services.identity.delete_me(principal.user_id)
    return Response(status_code=204)


@router.get("/actions", response_model=list[ActionOut], tags=["scores"], responses=errors())
async def actions(services: ServicesDep) -> list[ActionOut]:
    """The action catalogue: what each action is worth."""
    return [ActionOut(**rule.as_dict()) for rule in services.catalogue.rules()]


@router.post(
    "/scores/events",
    status_code=201,
    response_model=ScoreEventOut,
    response_model_exclude_none=True,
    tags=["scores"],
    responses={
        200: {"model": ScoreEventOut, "description": "Idempotent replay"},
        **errors(401, 403, 409, 429, 503),
    },
)
async def score_event(
    body: ScoreEventIn,
    principal: PrincipalDep,
    services: ServicesDep,
    client: ClientDep,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    """Record a completed action for the caller; points come from the catalogue."""
    result = await services.scoring.record(
        principal.user_id, body.action_type, idempotency_key=idempotency_key, client=client
    )
    return JSONResponse(score_event_body(result), status_code=200 if result.replayed else 201)


@router.get(
    "/leaderboard", response_model=LeaderboardOut, tags=["leaderboard"], responses=errors(503)
)
async def leaderboard(
    services: ServicesDep,
    limit: Limit = 10,
    offset: Offset = 0,
    scope: Scope = "global",
    period: PeriodParam = None,
    region: RegionParam = None,
) -> Response:
    """One page of a leaderboard (a board, one period, one region), best first."""
    if offset == 0:  # the top: its body is encoded once per change, by the top cache
        body = await services.board.page_json(scope, limit, period=period, region=region)
        return Response(body, media_type="application/json")
    page = await services.board.page(scope, limit, offset, period=period, region=region)
    return Response(orjson.dumps(page.body()), media_type="application/json")


@router.get(
    "/leaderboard/me", response_model=MeOut, tags=["leaderboard"], responses=errors(401, 403, 503)
)
async def leaderboard_me(
    principal: PrincipalDep,
    services: ServicesDep,
    scope: Scope = "global",
    around: Around = 1,
    period: PeriodParam = None,
    region: RegionParam = None,
) -> MeOut:
    """Your score, rank and `around` neighbours above and below."""
    mine = await services.board.mine(
        scope, principal.user_id, principal.display_name, around, period=period, region=region
    )
    assert mine.target is not None
    return MeOut(
        **mine.target.head(),
        user_id=mine.user_id,
        display_name=mine.display_name,
        score=mine.score,
        rank=mine.rank,
        around_me=[EntryOut(**e.as_dict()) for e in mine.around],
    )
