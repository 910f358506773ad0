"""Error bodies of the specifications that do not use the canonical one.

Statuses, codes and headers still come from `api/errors.py` (the one mapping of domain errors);
a style only decides how the body looks. A compatibility router opts in with
`APIRouter(route_class=error_route(style))`: its routes then answer every domain error and
request validation error in that style. Errors raised before or outside the route (404, 405,
413, a body that cannot be read, NUL in the query) find the style on the route class
(`error_style`, see `api.errors.error_payload`). Unexpected errors keep the canonical 500
body, which is what 003 documents anyway (`INTERNAL_ERROR`).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from scoreboard.api.errors import Style, headers_of, status_of
from scoreboard.api.text import CheckedRoute
from scoreboard.domain.errors import DomainError

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def _unauthorized(code: str) -> str:
    """Specifications 003 and 004 call a 401 `UNAUTHORIZED`."""
    return "UNAUTHORIZED" if code == "UNAUTHENTICATED" else code


def seed003_style(status: int, code: str, message: str) -> dict[str, Any]:
    """003: `{"error": {"code", "message"}}` with `UNAUTHORIZED` for 401."""
    return {"error": {"code": _unauthorized(code), "message": message}}


def seed002_003_style(status: int, code: str, message: str) -> dict[str, Any]:
    """`POST /api/score/update` serves 002 and 003 clients: both bodies in one.

    002 reads `{"status": "error", "message"}` (401: "Authentication failed."); 003 reads
    `{"error": {...}}`."""
    short = "Authentication failed." if status == 401 else message
    return {"status": "error", "message": short, **seed003_style(status, code, message)}


def seed004_style(status: int, code: str, message: str) -> dict[str, Any]:
    """004: `{"success": false, "error": {"code", "message"}}` with `UNAUTHORIZED` for 401."""
    return {"success": False, "error": {"code": _unauthorized(code), "message": message}}


class StyledError(BaseModel):
    code: str
    message: str


class Error003(BaseModel):
    error: StyledError


class Error002003(Error003):
    status: str = "error"
    message: str


class Error004(BaseModel):
    success: bool = False
    error: StyledError


def _validation_message(exc: RequestValidationError) -> str:
    problems = []
    for err in exc.errors():
        field = ".".join(str(part) for part in err.get("loc", ()) if part != "body") or "body"
        problems.append(f"{field}: {err.get('msg', 'invalid')}")
    return "The request is not valid: " + "; ".join(problems) if problems else "Invalid request."


def error_route(style: Style) -> type[CheckedRoute]:
    """An `APIRoute` class whose routes render their errors in `style`."""

    class StyledRoute(CheckedRoute):
        error_style = staticmethod(style)  # errors raised outside the route: `error_payload`

        def get_route_handler(self) -> Handler:
            handler = super().get_route_handler()

            async def styled(request: Request) -> Response:
                try:
                    return await handler(request)
                except DomainError as exc:
                    status = status_of(exc)
                    body = style(status, exc.code, exc.message)
                    return JSONResponse(body, status_code=status, headers=headers_of(exc))
                except RequestValidationError as exc:
                    body = style(400, "VALIDATION_FAILED", _validation_message(exc))
                    return JSONResponse(body, status_code=400)

            return styled

    return StyledRoute
