"""Specification 001: `/auth/login`, `/top-scores` and the action lifecycle.

Errors use the canonical body (001 names statuses only). The rules of the lifecycle live in
`service/actions.py`; these handlers parse, call it once and shape the answer.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field, model_validator

from scoreboard.api.deps import ClientDep, PrincipalDep, ServicesDep
from scoreboard.api.schemas import ERRORS, LoginIn, Strict
from scoreboard.domain.times import rfc3339
from scoreboard.realtime.dialects_compat import top_score_entry
from scoreboard.service.actions import ActionResult
from scoreboard.store.base import ActionRecord

router = APIRouter(tags=["compat: 001"], responses=ERRORS)

Ending = Literal["completed", "cancelled"]


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
    metadata: dict[str, Any] = Field(default_factory=dict)


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


@router.post("/auth/login", response_model=TokenOut001)
async def login(body: LoginIn, services: ServicesDep, client: ClientDep) -> TokenOut001:
    """001: exchange username and password for `{accessToken, expiresIn}` (rate limited)."""
    token, expires_in = await services.identity.login(body.username, body.password, client=client)
    return TokenOut001(accessToken=token, expiresIn=expires_in)


@router.get("/top-scores", response_model=list[TopScoreOut])
async def top_scores(services: ServicesDep) -> list[TopScoreOut]:
    """001: the top 10, best first (public)."""
    items = await services.board.top("global", 10)
    return [TopScoreOut.model_validate(top_score_entry(entry)) for entry in items]


@router.post("/users/{user_id}/actions", status_code=201, response_model=ActionOut001)
async def start_action(
    user_id: str, body: ActionStartIn, principal: PrincipalDep, services: ServicesDep
) -> ActionOut001:
    """001: start an action of yours; complete or cancel it with PUT."""
    action = await services.actions.start(principal.user_id, user_id, body.type, body.metadata)
    return action_body(action)


@router.put("/users/{user_id}/actions/{action_id}", response_model=ActionEndedOut)
async def end_action(
    user_id: str,
    action_id: str,
    body: ActionEndIn,
    principal: PrincipalDep,
    services: ServicesDep,
) -> ActionEndedOut:
    """001: complete an open action (its catalogue points, once) or cancel it (no points)."""
    if body.target == "completed":
        result = await services.actions.complete(principal.user_id, user_id, action_id)
    else:
        result = await services.actions.cancel(principal.user_id, user_id, action_id)
    return ended_body(result)
