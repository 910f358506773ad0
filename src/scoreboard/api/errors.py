"""The one place where domain errors become HTTP statuses and the error body.

Body everywhere: {"error": {"code", "message", "details"?}}. Nothing internal (stack traces,
SQL, exception text of unexpected errors) ever reaches a response.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from scoreboard.domain import errors as e

log = logging.getLogger(__name__)

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
        loc = [str(part) for part in err.get("loc", ()) if part != "body"]
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
    return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=exc.headers)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(error_body("INTERNAL_ERROR", "Internal error."), status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(e.DomainError, _on_domain)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)
