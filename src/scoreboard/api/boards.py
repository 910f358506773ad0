"""Boards and friends, `/api/v1` (API.md section 5). Handlers: parse, one service call, shape."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Path, Response

from scoreboard.api.deps import PrincipalDep, ServicesDep
from scoreboard.api.schemas import BoardsOut, FriendsOut, LeaderboardOut, errors
from scoreboard.api.text import CheckedRoute
from scoreboard.api.v1 import Limit, PeriodParam, RegionParam, Scope

router = APIRouter(prefix="/api/v1", route_class=CheckedRoute)
UserId = Annotated[str, Path(min_length=1, max_length=64)]


@router.get("/boards", response_model=BoardsOut, tags=["leaderboard"], responses=errors())
async def boards(services: ServicesDep) -> Response:
    """Every board: its window, timezone, aggregate, the actions it counts, its partition,
    and its current period."""
    now = services.board.clock()
    body = {"boards": [board.as_dict(now) for board in services.board.catalogue]}
    return Response(orjson.dumps(body), media_type="application/json")


@router.get(
    "/leaderboard/friends",
    response_model=LeaderboardOut,
    tags=["leaderboard"],
    responses=errors(401, 403, 503),
)
async def friends_board(
    principal: PrincipalDep,
    services: ServicesDep,
    scope: Scope = "global",
    period: PeriodParam = None,
    region: RegionParam = None,
    limit: Limit = 10,
) -> Response:
    """A board ranked among you and the users you added (ranks 1..n within that set)."""
    friends = await services.friends.list(principal.user_id)
    members = [principal.user_id, *(f.user_id for f in friends)]
    page = await services.board.friends(scope, members, limit, period=period, region=region)
    return Response(orjson.dumps(page.body()), media_type="application/json")


@router.get(
    "/users/me/friends",
    response_model=FriendsOut,
    tags=["friends"],
    responses=errors(401, 403, 503),
)
async def my_friends(principal: PrincipalDep, services: ServicesDep) -> FriendsOut:
    """The users you added (at most 1,000)."""
    friends = await services.friends.list(principal.user_id)
    return FriendsOut.model_validate(
        {"friends": [{"user_id": f.user_id, "display_name": f.display_name} for f in friends]}
    )


@router.put(
    "/users/me/friends/{user_id}",
    status_code=204,
    tags=["friends"],
    responses=errors(400, 401, 403, 404, 503),
)
async def add_friend(user_id: UserId, principal: PrincipalDep, services: ServicesDep) -> Response:
    """Add a user to your friends (idempotent)."""
    await services.friends.add(principal.user_id, user_id)
    return Response(status_code=204)


@router.delete(
    "/users/me/friends/{user_id}",
    status_code=204,
    tags=["friends"],
    responses=errors(401, 403, 503),
)
async def remove_friend(
    user_id: UserId, principal: PrincipalDep, services: ServicesDep
) -> Response:
    """Remove a user from your friends (idempotent)."""
    await services.friends.remove(principal.user_id, user_id)
    return Response(status_code=204)
