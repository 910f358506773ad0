"""Flags, `/api/v1/admin/flags` (API.md section 6, docs/RULES.md): the anomaly rules' flags
and their resolution. Admins only (`AdminDep`: no token 401, non-admin 403). Handlers: parse,
one service call, shape."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from scoreboard.api.deps import AdminDep, ServicesDep
from scoreboard.api.schemas import errors
from scoreboard.api.text import CheckedRoute
from scoreboard.domain.times import rfc3339
from scoreboard.service.moderation import MAX_REASON
from scoreboard.service.paging import MAX_LIMIT
from scoreboard.store.flags import FlagRecord

router = APIRouter(prefix="/api/v1/admin", route_class=CheckedRoute, tags=["admin"])
FlagId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class FlagOut(BaseModel):
    flag_id: int
    user_id: str
    rule: str = Field(
        description="max_points_per_minute, max_accounts_per_address_per_hour or "
        "min_action_duration"
    )
    detail: dict[str, Any] = Field(description="The numbers that tripped the rule")
    created_at: str
    status: str = Field(description="open or resolved")
    resolution: str | None = Field(description="dismissed, banned or quarantined; null if open")
    resolved_by: str | None
    resolved_at: str | None
    reason: str | None


class FlagPageOut(BaseModel):
    items: list[FlagOut]
    next_cursor: str | None


class ResolveIn(BaseModel):
    model_config = {"extra": "forbid"}
    action: Literal["dismiss", "ban", "quarantine"]
    reason: str = Field(min_length=1, max_length=MAX_REASON)


def flag_out(flag: FlagRecord) -> FlagOut:
    return FlagOut(
        flag_id=flag.flag_id,
        user_id=flag.user_id,
        rule=flag.rule,
        detail=flag.detail,
        created_at=rfc3339(flag.created_at),
        status=flag.status,
        resolution=flag.resolution,
        resolved_by=flag.resolved_by,
        resolved_at=None if flag.resolved_at is None else rfc3339(flag.resolved_at),
        reason=flag.reason,
    )


@router.get("/flags", response_model=FlagPageOut, responses=errors(401, 403, 503))
async def list_flags(
    admin: AdminDep,
    services: ServicesDep,
    status: Literal["open", "resolved", "all"] = "open",
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
) -> FlagPageOut:
    """The anomaly rules' flags, newest first; pass `next_cursor` back as `cursor` for more."""
    del admin
    page = await services.flags.page(status, limit, cursor)
    return FlagPageOut(items=[flag_out(f) for f in page.items], next_cursor=page.next_cursor)


@router.post(
    "/flags/{flag_id}/resolve", response_model=FlagOut, responses=errors(401, 403, 404, 409, 503)
)
async def resolve_flag(
    flag_id: FlagId, body: ResolveIn, admin: AdminDep, services: ServicesDep
) -> FlagOut:
    """Resolve an open flag: dismiss it, or ban or quarantine its user (as the moderation
    routes do)."""
    flag = await services.flags.resolve(admin.actor, flag_id, body.action, body.reason)
    return flag_out(flag)
