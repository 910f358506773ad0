"""Moderation, `/api/v1/admin/*` (API.md section 6): ban, unban, quarantine, release, void,
adjust, the user view (by id, or by username for the admin page). Admins only (`AdminDep`: no
token 401, non-admin 403). Handlers: parse, one service call, shape."""

from __future__ import annotations

from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field

from scoreboard.api.deps import AdminDep, ServicesDep
from scoreboard.api.schemas import errors
from scoreboard.api.text import CheckedRoute
from scoreboard.api.v1 import score_event_body
from scoreboard.service.moderation import MAX_REASON
from scoreboard.service.scoring import ScoreResult

router = APIRouter(prefix="/api/v1/admin", route_class=CheckedRoute, tags=["admin"])
UserId = Annotated[str, Path(min_length=1, max_length=64)]
EventId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class ReasonIn(BaseModel):
    model_config = {"extra": "forbid"}
    reason: str = Field(min_length=1, max_length=MAX_REASON)


class AdjustIn(ReasonIn):
    points: int = Field(ge=-1_000_000, le=1_000_000, description="non-zero")


def _json(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _status_route(action: Literal["ban", "unban", "quarantine", "release"], summary: str) -> None:
    async def act(
        user_id: UserId, body: ReasonIn, admin: AdminDep, services: ServicesDep
    ) -> Response:
        view = await services.moderation.act(admin.actor, action, user_id, body.reason)
        return _json(view.body())

    act.__doc__ = summary
    act.__name__ = f"{action}_user"
    router.add_api_route(
        f"/users/{{user_id}}/{action}",
        act,
        methods=["POST"],
        responses=errors(401, 403, 404, 409, 503),
    )


_status_route("ban", "Ban a user: off every board at once; their writes get 403.")
_status_route("unban", "Lift a ban: the user is back on every board with their scores.")
_status_route(
    "quarantine", "Hide a user from every public board; they still see their own standing."
)
_status_route("release", "End a quarantine: the user is back on every board.")


@router.get("/users", responses=errors(401, 403, 404, 503))
async def find_user(
    username: Annotated[str, Query(min_length=1, max_length=64)],
    admin: AdminDep,
    services: ServicesDep,
) -> Response:
    """Look a user up by exact username: the same body as `GET /admin/users/{user_id}`."""
    del admin
    view = await services.moderation.find(username)
    return _json(view.body())


@router.get("/users/{user_id}", responses=errors(401, 403, 404, 503))
async def user_view(user_id: UserId, admin: AdminDep, services: ServicesDep) -> Response:
    """A user's status, their standing on every board, and their open flags."""
    del admin
    view = await services.moderation.view(user_id)
    return _json(view.body())


@router.post("/events/{event_id}/void", responses=errors(401, 403, 404, 409, 503))
async def void_event(
    event_id: EventId, body: ReasonIn, admin: AdminDep, services: ServicesDep
) -> Response:
    """Void an event: a compensating event is appended and every board follows."""
    event = await services.moderation.void(admin.actor, event_id, body.reason)
    result = ScoreResult(event, None, False)
    return _json({**score_event_body(result), "voids": event_id})


@router.post("/users/{user_id}/adjust", status_code=201, responses=errors(401, 403, 404, 409, 503))
async def adjust_user(
    user_id: UserId, body: AdjustIn, admin: AdminDep, services: ServicesDep
) -> Response:
    """Adjust a user's score (positive or negative) on every board that counts all actions."""
    result = await services.moderation.adjust(admin.actor, user_id, body.points, body.reason)
    return _json(score_event_body(result), 201)
