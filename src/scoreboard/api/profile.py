"""The caller's profile: `GET` and `PATCH /api/v1/users/me` (display name, avatar URL, region).

The fields the specifications show on users: `display_name` (every board), `avatar_url` (004)
and `region` (002's regional boards); the rules are `service.profiles.ProfileService`'s.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from scoreboard.api.deps import PrincipalDep, ServicesDep
from scoreboard.api.schemas import Strict, errors
from scoreboard.api.text import CheckedRoute
from scoreboard.domain.times import rfc3339
from scoreboard.store.base import UserRecord

router = APIRouter(
    prefix="/api/v1",
    tags=["identity"],
    route_class=CheckedRoute,
    responses=errors(401, 403, 404, 503),
)

# http(s) and no whitespace or control characters; "" clears the avatar.
AVATAR_URL = r"^(https?://[^\s\x00-\x1f\x7f]+)?$"
REGION = r"^[^\x00-\x1f\x7f]*$"


class ProfileOut(BaseModel):
    user_id: str
    username: str
    display_name: str
    avatar_url: str | None
    region: str | None
    created_at: str


class ProfilePatchIn(Strict):
    display_name: str | None = Field(None, description="1–64 printable characters")
    avatar_url: str | None = Field(
        None, max_length=1024, pattern=AVATAR_URL, description='http(s) URL; "" clears it'
    )
    region: str | None = Field(None, max_length=64, pattern=REGION, description='"" clears it')


def profile_body(user: UserRecord) -> ProfileOut:
    return ProfileOut(
        user_id=user.user_id,
        username=user.username,
        display_name=user.display_name,
        avatar_url=user.avatar_url or None,
        region=user.region or None,
        created_at=rfc3339(user.created_at),
    )


@router.get("/users/me", response_model=ProfileOut)
async def get_me(principal: PrincipalDep, services: ServicesDep) -> ProfileOut:
    """Your profile."""
    return profile_body(await services.profiles.get(principal.user_id))


@router.patch("/users/me", response_model=ProfileOut)
async def patch_me(
    body: ProfilePatchIn, principal: PrincipalDep, services: ServicesDep
) -> ProfileOut:
    """Change your display name, avatar URL or region (fields left out stay as they are)."""
    user = await services.profiles.update(
        principal.user_id,
        display_name=body.display_name,
        avatar_url=body.avatar_url,
        region=body.region,
    )
    return profile_body(user)
