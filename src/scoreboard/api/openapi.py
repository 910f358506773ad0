"""The OpenAPI document lists exactly the statuses each route sends.

Routes declare their error statuses with `schemas.errors(...)`. The generated document is
post-processed once, at first request (FastAPI's documented extension point is overriding
`app.openapi`):
- FastAPI adds a 422 (and its `HTTPValidationError` schema) to every route with parameters or
  a body, but this API answers request validation errors with 400 (`api/errors.py`): dropped.
- FastAPI files every response under the route's media type; errors are JSON on every route
  (also on `/metrics`, whose success is Prometheus text): moved to `application/json`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

FASTAPI_ONLY = ("HTTPValidationError", "ValidationError")


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
            app.openapi_schema = _as_sent(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
