"""Specification 001: `/auth/login`, `/top-scores` and the action lifecycle.

Errors use the canonical body (001 names statuses only). The rules of the lifecycle live in
`service/actions.py`; these handlers parse, call it once and shape the answer.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from fastapi import APIRouter
from pydantic import BaseModel, Field, field_validator, model_validator

from scoreboard.api.deps import ClientDep, PrincipalDep, ServicesDep
from scoreboard.api.schemas import LoginIn, Strict, errors
from scoreboard.api.text import CheckedRoute
from scoreboard.domain.times import rfc3339
from scoreboard.realtime.dialects_compat import top_score_entry
from scoreboard.service.actions import ActionResult
from scoreboard.store.base import ActionRecord

router = APIRouter(tags=["compat: 001"], route_class=CheckedRoute)

Ending = Literal["completed", "cancelled"]

# Metadata is the client's own note on an action, stored and echoed back: bounded so that it
# can always be stored and encoded again (orjson refuses nesting past 254 levels).
METADATA_MAX_DEPTH = 8
METADATA_MAX_BYTES = 4096


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def check_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """`metadata` within `METADATA_MAX_DEPTH` levels and `METADATA_MAX_BYTES` as JSON."""
    if _depth(metadata) > METADATA_MAX_DEPTH:
        raise ValueError(f"metadata may nest at most {METADATA_MAX_DEPTH} levels")
    if len(orjson.dumps(metadata)) > METADATA_MAX_BYTES:
        raise ValueError(f"metadata may be at most {METADATA_MAX_BYTES} bytes of JSON")
    return metadata


class TokenOut001(BaseModel):
    accessToken: str
    expiresIn: int


class TopScoreOut(BaseModel):
    userId: str
    username: str
    score: int


class ActionStartIn(Strict):
    status: Literal["started"] = "started"
    type: str | None = Field(None, description="An action_type of the catalogue (default one)")
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description=f"Any JSON object, ≤ {METADATA_MAX_DEPTH} levels, ≤ {METADATA_MAX_BYTES} bytes",
    )

    _metadata = field_validator("metadata")(check_metadata)


class ActionEndIn(Strict):
    status: Ending | None = None
    started: Ending | None = Field(None, description="The specification's literal key")

    @model_validator(mode="after")
    def _one_target(self) -> ActionEndIn:
        if self.status is None and self.started is None:
            raise ValueError('send {"status": "completed"} or {"status": "cancelled"}')
        if None not in (self.status, self.started) and self.status != self.started:
            raise ValueError("status and started disagree")
        return self

    @property
    def target(self) -> Ending:
        value = self.status or self.started
        assert value is not None
        return value


class ActionOut001(BaseModel):
    actionId: str
    userId: str
    type: str
    status: str
    startedAt: str
    metadata: dict[str, Any]


class ActionEndedOut(ActionOut001):
    endedAt: str | None
    awardedPoints: int
    totalScore: int


def action_body(action: ActionRecord) -> ActionOut001:
    return ActionOut001(
        actionId=action.action_id,
        userId=action.user_id,
        type=action.action_type,
        status=action.status,
        startedAt=rfc3339(action.started_at),
        metadata=action.metadata,
    )


def ended_body(result: ActionResult) -> ActionEndedOut:
    action = result.action
    return ActionEndedOut(
        **action_body(action).model_dump(),
        endedAt=rfc3339(action.ended_at) if action.ended_at else None,
        awardedPoints=result.awarded_points,
        totalScore=result.total_score,
    )


@router.post("/auth/login", response_model=TokenOut001, responses=errors(401, 429, 503))
async def login(body: LoginIn, services: ServicesDep, client: ClientDep) -> TokenOut001:
    """001: exchange username and password for `{accessToken, expiresIn}` (rate limited)."""
    token, expires_in = await services.identity.login(body.username, body.password, client=client)
    return TokenOut001(accessToken=token, expiresIn=expires_in)


@router.get("/top-scores", response_model=list[TopScoreOut], responses=errors(503))
async def top_scores(services: ServicesDep) -> list[TopScoreOut]:
    """001: the top 10, best first (public)."""
    items = await services.board.top("global", 10)
    return [TopScoreOut.model_validate(top_score_entry(entry)) for entry in items]


@router.post(
    "/users/{user_id}/actions",
    status_code=201,
    response_model=ActionOut001,
    responses=errors(401, 403, 429, 503),
)
async def start_action(
    user_id: str, body: ActionStartIn, principal: PrincipalDep, services: ServicesDep
) -> ActionOut001:
    """001: start an action of yours; complete or cancel it with PUT."""
    action = await services.actions.start(principal.user_id, user_id, body.type, body.metadata)
    return action_body(action)


@router.put(
    "/users/{user_id}/actions/{action_id}",
    response_model=ActionEndedOut,
    responses=errors(401, 403, 404, 409, 429, 503),
)
async def end_action(
    user_id: str,
    action_id: str,
    body: ActionEndIn,
    principal: PrincipalDep,
    services: ServicesDep,
    client: ClientDep,
) -> ActionEndedOut:
    """001: complete an open action (its catalogue points, once) or cancel it (no points)."""
    if body.target == "completed":
        result = await services.actions.complete(
            principal.user_id, user_id, action_id, client=client
        )
    else:
        result = await services.actions.cancel(principal.user_id, user_id, action_id)
    return ended_body(result)
