"""The OpenAPI document: exactly the statuses each route sends, a bearer security scheme, clean
operation ids, and the compatibility routes tagged and grouped apart from the canonical API.

Routes declare their error statuses with `schemas.errors(...)`. The generated document is
post-processed once, at first request (FastAPI's documented extension point is overriding
`app.openapi`):
- FastAPI adds a 422 (and its `HTTPValidationError` schema) to every route with parameters or
  a body, but this API answers request validation errors with 400 (`api/errors.py`): dropped.
- FastAPI files every response under the route's media type; errors are JSON on every route
  (also on `/metrics`, whose success is Prometheus text): moved to `application/json`.
- Every operation that reads the `Authorization` header (anywhere in its dependencies) gets
  the `bearer` security scheme instead of a plain header parameter: one "Authorize" button.
- Operation ids are the handler's name (`score_event`), `compat_<spec>_<name>` for the
  compatibility routes (`operation_id`), unique across the document.
- Tags carry descriptions; the compatibility tags come after the canonical ones and are
  grouped apart (`x-tagGroups`, which ReDoc shows as two sections).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

FASTAPI_ONLY = ("HTTPValidationError", "ValidationError")
BEARER = {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
CANONICAL_TAGS = [
    ("identity", "Accounts and sign-in: register, log in, your profile, delete yourself."),
    ("scores", "The action catalogue and score events (the server decides the points)."),
    ("leaderboard", "The boards (time windows, regions), their pages and your own standing."),
    ("friends", "Your friends list, for the friends leaderboard."),
    (
        "admin",
        "For admins (the admin role, or an admin API key): moderation, the admin "
        "audit log, the webhook delivery log.",
    ),
    ("operations", "Liveness, readiness and Prometheus metrics."),
]
COMPAT_PREFIX = "compat: "
COMPAT_DESCRIPTION = (
    "Routes of specification {specs} (`../shared/seeds/`), kept for its clients with its "
    "own shapes and error bodies; new clients use the canonical API (docs/API.md, "
    '"Compatibility routes").'
)


def operation_id(route: APIRoute) -> str:
    """`score_event`; `compat_001_login` for a route of a compatibility router."""
    compat = [t for t in route.tags if isinstance(t, str) and t.startswith(COMPAT_PREFIX)]
    if compat:
        specs = compat[0].removeprefix(COMPAT_PREFIX).replace(", ", "_")
        return f"compat_{specs}_{route.name}"
    return route.name


def _secure(schema: dict[str, Any]) -> None:
    """The bearer scheme on every operation that takes the `Authorization` header (FastAPI
    lists the header parameters of every dependency); the header itself leaves the parameter
    list: the scheme sends it."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            params = operation.get("parameters", [])
            kept = [
                p
                for p in params
                if not (p.get("in") == "header" and p.get("name", "").lower() == "authorization")
            ]
            if len(kept) == len(params):
                continue
            operation["security"] = [{"bearer": []}]
            if kept:
                operation["parameters"] = kept
            else:
                operation.pop("parameters", None)
    schema.setdefault("components", {})["securitySchemes"] = BEARER


def _tags(schema: dict[str, Any]) -> None:
    used: list[str] = []
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for tag in operation.get("tags", []):
                if tag not in used:
                    used.append(tag)
    canonical = [{"name": name, "description": text} for name, text in CANONICAL_TAGS]
    compat = sorted(t for t in used if t.startswith(COMPAT_PREFIX))
    schema["tags"] = canonical + [
        {"name": t, "description": COMPAT_DESCRIPTION.format(specs=t.removeprefix(COMPAT_PREFIX))}
        for t in compat
    ]
    schema["x-tagGroups"] = [
        {"name": "Canonical API (/api/v1)", "tags": [name for name, _ in CANONICAL_TAGS]},
        {"name": "Compatibility routes", "tags": compat},
    ]


def _errors_as_json(responses: dict[str, Any]) -> None:
    for status, response in responses.items():
        content = response.get("content", {})
        if int(status) >= 400 and content and "application/json" not in content:
            response["content"] = {"application/json": next(iter(content.values()))}


def _as_sent(schema: dict[str, Any]) -> dict[str, Any]:
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
            _errors_as_json(operation.get("responses", {}))
    schemas = schema.get("components", {}).get("schemas", {})
    for name in FASTAPI_ONLY:
        schemas.pop(name, None)
    return schema


def install(app: FastAPI) -> None:
    """Serve the post-processed document at `/openapi.json` (and so on `/docs`)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = _as_sent(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                )
            )
            _secure(schema)
            _tags(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
