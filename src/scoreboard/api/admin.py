"""Admin routes, `/api/v1/admin` (API.md section 6): every one takes `AdminDep` (no token →
401, not an admin → 403). Handlers: parse, one service call, shape."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from scoreboard.api.deps import AdminDep, ServicesDep
from scoreboard.api.schemas import errors
from scoreboard.api.text import CheckedRoute
from scoreboard.domain.times import rfc3339
from scoreboard.service.paging import MAX_LIMIT

router = APIRouter(prefix="/api/v1/admin", route_class=CheckedRoute)


class AuditItemOut(BaseModel):
    audit_id: int
    actor: str
    action: str
    target: str
    reason: str
    created_at: str


class AuditPageOut(BaseModel):
    items: list[AuditItemOut]
    next_cursor: str | None


@router.get("/audit", response_model=AuditPageOut, tags=["admin"], responses=errors(401, 403, 503))
async def admin_audit(
    admin: AdminDep,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
) -> AuditPageOut:
    """The admin audit log, newest first; pass `next_cursor` back as `cursor` for more."""
    page = await services.audit.page(limit, cursor)
    items = [
        AuditItemOut(
            audit_id=r.audit_id,
            actor=r.actor,
            action=r.action,
            target=r.target,
            reason=r.reason,
            created_at=rfc3339(r.created_at),
        )
        for r in page.items
    ]
    return AuditPageOut(items=items, next_cursor=page.next_cursor)
