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


class RefreshIn(Strict):
    refresh_token: str = Field(
        max_length=128, description="The refresh_token of the login or of the last refresh"
    )


class ScoreEventIn(Strict):
    action_type: str = Field(description="An action_type from GET /api/v1/actions")


class UserOut(BaseModel):
    user_id: str
    username: str
    display_name: str


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="The access token's lifetime, seconds")
    refresh_token: str = Field(
        description="Single use: POST /api/v1/auth/refresh answers the next one"
    )


class ActionOut(BaseModel):
    action_type: str
    points: int
    description: str
    min_increment: int
    max_increment: int
    min_duration_seconds: float
    max_open_seconds: float


class OnBoardOut(BaseModel):
    """The user's standing on one board the event counted on."""

    scope: str
    period: str
    score: int
    rank: int | None


class ScoreEventOut(BaseModel):
    event_id: int
    user_id: str
    action_type: str
    awarded_points: int
    new_score: int
    rank: int | None
    processed_at: str
    boards: list[OnBoardOut]
    idempotent: bool | None = None


class EntryOut(BaseModel):
    rank: int
    user_id: str
    display_name: str
    score: int


class PeriodOut(BaseModel):
    id: str = Field(description="all, 2026-12-01, 2026-W49 or 2026-12")
    starts_at: str | None
    ends_at: str | None = Field(description="null on an all-time board")


class BoardHead(BaseModel):
    scope: str
    period: PeriodOut
    next_reset_at: str | None = Field(description="null on an all-time board")


class BoardOut(BaseModel):
    board_id: str
    title: str
    window: str
    timezone: str
    aggregate: str
    actions: list[str] | None
    partition: str | None
    period: PeriodOut


class BoardsOut(BaseModel):
    boards: list[BoardOut]


class FriendOut(BaseModel):
    user_id: str
    display_name: str


class FriendsOut(BaseModel):
    friends: list[FriendOut]


class LeaderboardOut(BoardHead):
    limit: int
    offset: int
    total: int
    items: list[EntryOut]
    generated_at: str


class MeOut(BoardHead):
    user_id: str
    display_name: str
    score: int
    rank: int | None
    around_me: list[EntryOut]


class Problem(BaseModel):
    """One problem of a request: which part (`field`) and what is wrong with it."""

    model_config = ConfigDict(extra="allow")  # e.g. `min_duration_seconds` on a too-fast action
    field: str
    problem: str


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: list[Problem] | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail


DESCRIPTIONS = {
    400: "VALIDATION_FAILED (and INVALID_ACTION_TYPE, INVALID_SCOPE where they apply)",
    401: "UNAUTHENTICATED, or INVALID_CREDENTIALS on login",
    403: "FORBIDDEN: another user's resource",
    404: "NOT_FOUND",
    409: "A conflict: IDEMPOTENCY_CONFLICT, ACTION_NOT_OPEN or USERNAME_TAKEN",
    413: "PAYLOAD_TOO_LARGE: a request body over the configured limit",
    429: "RATE_LIMITED, with Retry-After",
    503: "SERVICE_UNAVAILABLE, with Retry-After",
}
# Any route can answer these: NUL in the path, query or a header (api/text.py) and a body over
# the limit (api/middleware.py) are refused before routing.
ALWAYS = (400, 413)


def errors(*statuses: int, model: type[BaseModel] = ErrorOut) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` of a route: exactly the error statuses it sends, with the body
    `model` (a compatibility route passes its specification's)."""
    return {
        status: {"model": model, "description": DESCRIPTIONS[status]}
        for status in sorted({*ALWAYS, *statuses})
    }
