"""The one place where domain errors become HTTP statuses and the error body.

Body everywhere: {"error": {"code", "message", "details"?}}, `details` a list of
{"field", "problem"}; except on the compatibility routes whose specification has its own error
body: their route class carries an `error_style`, and every error of theirs (also those raised
before or outside the route: 404, 405, 413, a body that cannot be read) is rendered in it by
`error_payload`. Nothing internal (stack traces, SQL, exception text of unexpected errors)
ever reaches a response.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from scoreboard.domain import errors as e

log = logging.getLogger(__name__)

# A specification's own error body: (status, code, message) -> body.
Style = Callable[[int, str, str], dict[str, Any]]

STATUS: dict[type[e.DomainError], int] = {
    e.ValidationFailed: 400,
    e.InvalidActionType: 400,
    e.InvalidScope: 400,
    e.Unauthenticated: 401,
    e.InvalidCredentials: 401,
    e.Forbidden: 403,
    e.NotFound: 404,
    e.IdempotencyConflict: 409,
    e.ActionNotOpen: 409,
    e.UsernameTaken: 409,
    e.ModerationConflict: 409,
    e.AlreadyVoided: 409,
    e.FlagResolved: 409,
    e.NameTaken: 409,
    e.RateLimited: 429,
    e.ServiceUnavailable: 503,
}

HTTP_CODES = {
    400: "VALIDATION_FAILED",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "VALIDATION_FAILED",
}


def status_of(error: e.DomainError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def _routes(router: Any) -> Iterator[BaseRoute]:
    """Every route of `router`, included routers flattened: FastAPI copies included routes
    into the app's router in older versions and keeps the included router (its
    `original_router`) in newer ones."""
    for route in getattr(router, "routes", ()):
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _routes(included)
        else:
            yield route


def route_style(scope: Scope) -> Style | None:
    """The `error_style` of the route the request is for (a full match first, else a route
    with that path but another method), None for canonical routes and unknown paths. Only
    error paths call this: it walks the routes."""
    partial: Style | None = None
    for route in _routes(getattr(scope.get("app"), "router", None)):
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return getattr(route, "error_style", None)
        if match is Match.PARTIAL and partial is None:
            partial = getattr(route, "error_style", None)
    return partial


def error_payload(
    scope: Scope, status: int, code: str, message: str, details: Any = None
) -> dict[str, Any]:
    """The error body for this request's route: its specification's style, else canonical."""
    style = route_style(scope)
    return style(status, code, message) if style else error_body(code, message, details)


def headers_of(error: e.DomainError) -> dict[str, str]:
    if isinstance(error, e.RateLimited | e.ServiceUnavailable):
        return {"Retry-After": str(error.retry_after)}
    if isinstance(error, e.Unauthenticated | e.InvalidCredentials):
        return {"WWW-Authenticate": "Bearer"}
    return {}


def domain_response(error: e.DomainError) -> JSONResponse:
    return JSONResponse(
        error_body(error.code, error.message, error.details),
        status_code=status_of(error),
        headers=headers_of(error),
    )


# What orjson's and `api.text`'s refusals of NUL and unpaired surrogates say.
NOT_TEXT_HINTS = ("surrogate", "NUL")
LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors():
        problem = str(err.get("msg", ""))
        if err.get("type") == "json_invalid":  # loc is ("body", character offset)
            offset = err.get("loc", ("body", 0))[-1]
            reason = (err.get("ctx") or {}).get("error", "")
            details.append(
                {"field": "body", "problem": f"{problem} at character {offset}: {reason}"}
            )
            continue
        # The field as the client named it: `limit`, `metadata.note`; a query, path or header
        # parameter by its name alone, as the service's own range errors name it.
        loc = [str(part) for part in err.get("loc", ())]
        if loc and loc[0] in LOCATIONS:
            loc = loc[1:]
        details.append({"field": ".".join(loc) or "body", "problem": problem})
    return details


async def _on_domain(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, e.DomainError)
    return domain_response(exc)


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = _validation_details(exc)
    malformed = any(d["problem"].startswith("JSON decode error") for d in details)
    message = "The request body is not valid JSON." if malformed else "The request is not valid."
    if malformed and any(hint in d["problem"] for d in details for hint in NOT_TEXT_HINTS):
        message = "The request body holds text that is not text (NUL or an unpaired surrogate)."
    content_type = request.headers.get("content-type", "")
    if "json" not in content_type.lower() and any(
        tuple(err.get("loc", ())) == ("body",) for err in exc.errors()
    ):  # a JSON body sent without its type (curl -d sends a form type) is not parsed: say why
        got = f" (got {content_type[:60]!r})" if content_type else " (none was sent)"
        message = f"Send the body as JSON with Content-Type: application/json{got}."
    return JSONResponse(error_body("VALIDATION_FAILED", message, details), status_code=400)


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTP_CODES.get(exc.status_code, "VALIDATION_FAILED")
    message = "No such route." if exc.status_code == 404 else str(exc.detail)
    body = error_payload(request.scope, exc.status_code, code, message)
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(error_body("INTERNAL_ERROR", "Internal error."), status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(e.DomainError, _on_domain)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)
