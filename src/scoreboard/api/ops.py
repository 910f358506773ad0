"""Operations: liveness, readiness, metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from scoreboard.api.deps import ServicesDep
from scoreboard.api.errors import error_body
from scoreboard.api.schemas import errors
from scoreboard.api.text import CheckedRoute
from scoreboard.domain.errors import ServiceUnavailable
from scoreboard.drain import Drain

router = APIRouter(tags=["operations"], route_class=CheckedRoute, responses=errors())


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", responses=errors(503))
async def readyz(request: Request, services: ServicesDep) -> JSONResponse:
    """Ready when the database (and Redis, when configured) answer; 503 otherwise, and 503
    while the server drains before stopping (`{"field": "server", "problem": "draining"}`).

    `rank_index` is informative: "rebuilding" still serves correct ranks (from the database).
    A 503 lists the unreachable backends in `details` (`{"field": "database", "problem":
    "unreachable"}`), the one `details` shape of every error.
    """
    drain = Drain.of(request.app)
    if drain is not None and drain.draining:
        problem = [{"field": "server", "problem": "draining"}]
        body = error_body("SERVICE_UNAVAILABLE", "The server is shutting down.", problem)
        return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})
    checks: dict[str, str] = {}
    try:
        await services.store.ping()
        checks["database"] = "ok"
    except ServiceUnavailable:
        checks["database"] = "unreachable"
    if services.redis_ping is not None:
        try:
            timeout = services.settings.redis_timeout_seconds
            await asyncio.wait_for(services.redis_ping(), timeout)
            checks["redis"] = "ok"
        except Exception:
            checks["redis"] = "unreachable"
    checks["rank_index"] = "ok" if services.board.index_ready else "rebuilding"
    if "unreachable" in checks.values():
        failing = [{"field": name, "problem": state} for name, state in checks.items()]
        failing = [problem for problem in failing if problem["problem"] == "unreachable"]
        body = error_body("SERVICE_UNAVAILABLE", "A backend is unreachable.", failing)
        return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})
    return JSONResponse({"status": "ready", "checks": checks})


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(services: ServicesDep) -> Response:
    """Prometheus text format."""
    return Response(services.metrics.render(), media_type="text/plain; version=0.0.4")
