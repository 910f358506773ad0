"""Request and response bodies of the canonical API (they also document it in OpenAPI)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RegisterIn(Strict):
    username: str = Field(description="3–32 of [A-Za-z0-9_.-]")
    password: str = Field(description="8–128 characters")
    display_name: str | None = None


class LoginIn(Strict):
    username: str
    password: str


class ScoreEventIn(Strict):
    action_type: str = Field(description="An action_type from GET /api/v1/actions")


class UserOut(BaseModel):
    user_id: str
    username: str
    display_name: str


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class ActionOut(BaseModel):
    action_type: str
    points: int
    description: str
    min_increment: int
    max_increment: int
    min_duration_seconds: float
    max_open_seconds: float


class ScoreEventOut(BaseModel):
    event_id: int
    user_id: str
    action_type: str
    awarded_points: int
    new_score: int
    rank: int | None
    processed_at: str
    idempotent: bool | None = None


class EntryOut(BaseModel):
    rank: int
    user_id: str
    display_name: str
    score: int


class LeaderboardOut(BaseModel):
    scope: str
    limit: int
    offset: int
    total: int
    items: list[EntryOut]
    generated_at: str


class MeOut(BaseModel):
    user_id: str
    display_name: str
    score: int
    rank: int | None
    around_me: list[EntryOut]


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: object | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "VALIDATION_FAILED and friends"},
    401: {"model": ErrorOut, "description": "UNAUTHENTICATED"},
    429: {"model": ErrorOut, "description": "RATE_LIMITED, with Retry-After"},
    503: {"model": ErrorOut, "description": "SERVICE_UNAVAILABLE, with Retry-After"},
}
