"""The event log (API.md section 6, "Audit log query"): `GET /api/v1/admin/events` (admins:
filters, cursor pages, or with `Accept: application/x-ndjson` every matching event streamed)
and `GET /api/v1/users/me/events` (a user's own). Handlers: parse, one service call, shape;
the rules are `service.event_log`'s."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from scoreboard.api.deps import AdminDep, PrincipalDep, ServicesDep
from scoreboard.api.errors import error_body
from scoreboard.api.schemas import errors
from scoreboard.api.text import CheckedRoute
from scoreboard.domain.errors import DomainError
from scoreboard.domain.times import rfc3339
from scoreboard.service.event_log import EventPage, event_query
from scoreboard.service.paging import DEFAULT_LIMIT, MAX_LIMIT
from scoreboard.store.event_log import LoggedEvent

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", route_class=CheckedRoute)
NDJSON = "application/x-ndjson"

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[
    str | None, Query(min_length=1, max_length=64, description="a page's `next_cursor`")
]
Instant = Annotated[
    str | None,
    Query(max_length=64, description="ISO-8601 with a time zone, e.g. 2026-12-01T00:00:00Z"),
]


class EventOut(BaseModel):
    event_id: int
    user_id: str
    action_type: str
    points: int
    created_at: str
    idempotency_key: str | None
    voids: int | None = Field(description="for a compensation: the event it voids")
    voided_by: int | None = Field(description="the compensation that voids this event")
    source: str = Field(
        description="admins: `user`, `apikey:NAME` or `admin:USER`; "
        "your own events: `user`, `server` or `admin`"
    )


class EventPageOut(BaseModel):
    items: list[EventOut]
    next_cursor: str | None


def event_body(event: LoggedEvent) -> dict[str, Any]:
    """One item, the same in a page and on an NDJSON line."""
    return {
        "event_id": event.event_id,
        "user_id": event.user_id,
        "action_type": event.action_type,
        "points": event.points,
        "created_at": rfc3339(event.created_at),
        "idempotency_key": event.idempotency_key,
        "voids": event.voids,
        "voided_by": event.voided_by,
        "source": event.source,
    }


def page_response(page: EventPage) -> Response:
    body = {"items": [event_body(e) for e in page.items], "next_cursor": page.next_cursor}
    return Response(orjson.dumps(body), media_type="application/json")


def wants_ndjson(accept: str | None) -> bool:
    """Whether `Accept` prefers NDJSON to JSON (by q-value; a tie, or wildcards only, is
    JSON, the route's default)."""
    ndjson = json = 0.0
    for item in (accept or "").split(","):
        media, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.lower()
        if media == NDJSON:
            ndjson = max(ndjson, q)
        elif media in ("application/json", "application/*", "*/*"):
            json = max(json, q)
    return ndjson > json


async def ndjson_lines(chunks: AsyncIterator[list[LoggedEvent]]) -> AsyncIterator[bytes]:
    """One write per chunk. A chunk that cannot be read after the answer started ends the
    stream with one line in the error shape (`{"error": {...}}`): never a silently short
    export."""
    try:
        async for chunk in chunks:
            yield b"".join(orjson.dumps(event_body(e)) + b"\n" for e in chunk)
    except DomainError as exc:
        log.warning("event export ended early: %s", exc.message)
        yield orjson.dumps(error_body(exc.code, exc.message, exc.details)) + b"\n"


EVENTS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A page (JSON), or with `Accept: application/x-ndjson` every "
        "matching event, one `EventOut` a line",
        "content": {NDJSON: {"schema": {"$ref": "#/components/schemas/EventOut"}}},
    },
    **errors(401, 403, 503),
}


@router.get(
    "/admin/events", response_model=EventPageOut, tags=["admin"], responses=EVENTS_RESPONSES
)
async def admin_events(
    request: Request,
    admin: AdminDep,
    services: ServicesDep,
    user_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    action_type: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    since: Instant = None,
    until: Instant = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    """Score events, newest first, filtered; as NDJSON every match (after `cursor` if given)."""
    del admin
    query = event_query(user_id, action_type, since, until)
    if wants_ndjson(request.headers.get("accept")):
        chunks = await services.event_log.export(query, cursor)
        return StreamingResponse(ndjson_lines(chunks), media_type=NDJSON)
    return page_response(await services.event_log.page(query, limit, cursor))


@router.get(
    "/users/me/events",
    response_model=EventPageOut,
    tags=["scores"],
    responses=errors(401, 403, 503),
)
async def my_events(
    principal: PrincipalDep,
    services: ServicesDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    """Your score events, newest first (`source`: `user`, `server` or `admin`)."""
    return page_response(await services.event_log.mine(principal.user_id, limit, cursor))
