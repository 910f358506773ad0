"""The webhook delivery log, `/api/v1/admin/webhooks` (API.md section 6, docs/WEBHOOKS.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from scoreboard.api.deps import AdminDep, ServicesDep
from scoreboard.api.schemas import errors
from scoreboard.api.text import CheckedRoute
from scoreboard.domain.times import rfc3339

router = APIRouter(prefix="/api/v1", route_class=CheckedRoute)


class DeliveryOut(BaseModel):
    delivery_id: int
    webhook_id: str = Field(description="the payload's `id`")
    type: str
    attempt: int = Field(description="1 for the first attempt")
    at: str
    status_code: int | None = Field(description="null when the receiver did not answer")
    error: str | None = Field(description="null when delivered")
    duration_ms: int


class DeliveriesOut(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None


@router.get(
    "/admin/webhooks",
    response_model=DeliveriesOut,
    tags=["admin"],
    responses=errors(401, 403, 503),
)
async def webhook_deliveries(
    _: AdminDep,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$")] = None,
) -> DeliveriesOut:
    """Every webhook delivery attempt, newest first (cursor paging)."""
    page = await services.webhooks.deliveries(limit, cursor)
    items = [
        DeliveryOut(
            delivery_id=d.delivery_id,
            webhook_id=d.webhook_id,
            type=d.type,
            attempt=d.attempt,
            at=rfc3339(d.at),
            status_code=d.status_code,
            error=d.error,
            duration_ms=d.duration_ms,
        )
        for d in page.items
    ]
    return DeliveriesOut(items=items, next_cursor=page.next_cursor)
