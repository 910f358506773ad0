"""Server-to-server writes, `/api/v1` (API.md section 6): the site's backend scores for a user
with an API key. Handlers: parse, one service call, shape."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path
from fastapi.responses import JSONResponse

from scoreboard.api.deps import CallerDep, ServicesDep
from scoreboard.api.schemas import ScoreEventIn, ScoreEventOut, errors
from scoreboard.api.text import CheckedRoute
from scoreboard.api.v1 import score_event_body

router = APIRouter(prefix="/api/v1", route_class=CheckedRoute)
UserId = Annotated[str, Path(min_length=1, max_length=64)]


@router.post(
    "/users/{user_id}/score-events",
    status_code=201,
    response_model=ScoreEventOut,
    response_model_exclude_none=True,
    tags=["scores"],
    responses={
        200: {"model": ScoreEventOut, "description": "Idempotent replay"},
        **errors(401, 403, 404, 409, 429, 503),
    },
)
async def user_score_event(
    user_id: UserId,
    body: ScoreEventIn,
    caller: CallerDep,
    services: ServicesDep,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    """Record a completed action for a user, with a scorer or admin API key (the site's
    backend): the user's own write in every respect (points, idempotency keys, rate limits)."""
    result = await services.server_writes.record(
        caller, user_id, body.action_type, idempotency_key=idempotency_key
    )
    return JSONResponse(score_event_body(result), status_code=200 if result.replayed else 201)
