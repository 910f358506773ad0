"""Issue 9 item 6: /openapi.json lists exactly the statuses each route sends (no 422: the API
answers 400), with the error body of the route's specification."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from scoreboard.app import create_app
from scoreboard.config import Settings

# What each operation sends besides its success; 400 and 413 are possible on every route (NUL
# text in a path, query or header; a body over the limit) and are listed everywhere.
EXPECTED = {
    "POST /api/v1/auth/register": {201, 409, 429, 503},
    "POST /api/v1/auth/login": {200, 401, 429, 503},
    "POST /api/v1/auth/refresh": {200, 401, 429, 503},
    "POST /api/v1/auth/logout": {204, 429, 503},
    "DELETE /api/v1/users/me": {204, 401, 403, 404, 503},
    "GET /api/v1/users/me": {200, 401, 403, 404, 503},
    "PATCH /api/v1/users/me": {200, 401, 403, 404, 503},
    "GET /api/v1/actions": {200},
    "POST /api/v1/scores/events": {200, 201, 401, 403, 409, 429, 503},
    "GET /api/v1/leaderboard": {200, 503},
    "GET /api/v1/leaderboard/me": {200, 401, 403, 503},
    "GET /api/v1/boards": {200},
    "GET /api/v1/leaderboard/friends": {200, 401, 403, 503},
    "GET /api/v1/users/me/friends": {200, 401, 403, 503},
    "PUT /api/v1/users/me/friends/{user_id}": {204, 401, 403, 404, 503},
    "DELETE /api/v1/users/me/friends/{user_id}": {204, 401, 403, 503},
    "POST /api/v1/users/{user_id}/score-events": {200, 201, 401, 403, 404, 409, 429, 503},
    "GET /api/v1/admin/audit": {200, 401, 403, 503},
    "GET /api/v1/admin/events": {200, 401, 403, 503},
    "GET /api/v1/users/me/events": {200, 401, 403, 503},
    "GET /healthz": {200},
    "GET /readyz": {200, 503},
    "GET /metrics": {200},
    "POST /auth/login": {200, 401, 429, 503},
    "GET /top-scores": {200, 503},
    "POST /users/{user_id}/actions": {201, 401, 403, 429, 503},
    "PUT /users/{user_id}/actions/{action_id}": {200, 401, 403, 404, 409, 429, 503},
    "POST /api/score/update": {200, 401, 403, 409, 429, 503},
    "GET /api/scores/top": {200, 503},
    "GET /api/scores/me": {200, 401, 403, 503},
    "POST /api/v1/scores/update": {200, 401, 403, 409, 429, 503},
    "GET /api/v1/leaderboard/top10": {200, 503},
    "GET /api/v1/admin/webhooks": {200, 401, 403, 503},
    "POST /api/v1/admin/users/{user_id}/ban": {200, 401, 403, 404, 409, 503},
    "POST /api/v1/admin/users/{user_id}/unban": {200, 401, 403, 404, 409, 503},
    "POST /api/v1/admin/users/{user_id}/quarantine": {200, 401, 403, 404, 409, 503},
    "POST /api/v1/admin/users/{user_id}/release": {200, 401, 403, 404, 409, 503},
    "POST /api/v1/admin/users/{user_id}/adjust": {201, 401, 403, 404, 409, 503},
    "GET /api/v1/admin/users": {200, 401, 403, 404, 503},
    "GET /api/v1/admin/users/{user_id}": {200, 401, 403, 404, 503},
    "POST /api/v1/admin/events/{event_id}/void": {200, 401, 403, 404, 409, 503},
    "GET /api/v1/admin/flags": {200, 401, 403, 503},
    "POST /api/v1/admin/flags/{flag_id}/resolve": {200, 401, 403, 404, 409, 503},
}
STYLE = {
    "/api/score/update": "Error002003",
    "/api/scores/top": "Error003",
    "/api/scores/me": "Error003",
    "/api/v1/scores/update": "Error004",
    "/api/v1/leaderboard/top10": "Error004",
}


@pytest.fixture
async def document(tmp_path: Path) -> dict[str, Any]:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}"
    )
    app = create_app(settings)  # no lifespan: the document needs no backend
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        assert (await http.get("/docs")).status_code == 200
        r = await http.get("/openapi.json")
        assert r.status_code == 200
        body: dict[str, Any] = r.json()
        return body


async def test_every_operation_lists_exactly_what_it_sends(document: dict[str, Any]) -> None:
    listed = {
        f"{method.upper()} {path}": {int(status) for status in operation["responses"]}
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }
    assert listed == {name: statuses | {400, 413} for name, statuses in EXPECTED.items()}


async def test_no_422_and_errors_carry_their_routes_body(document: dict[str, Any]) -> None:
    assert "422" not in str(document["paths"])
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for operation in operations.values():
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/" + STYLE.get(path, "ErrorOut")), (path, status, ref)
    detail = document["components"]["schemas"]["ErrorDetail"]["properties"]["details"]
    assert "Problem" in str(detail)  # one details shape: a list of {field, problem}


async def test_read_bounds_are_documented(document: dict[str, Any]) -> None:
    params = {
        p["name"]: p["schema"]
        for p in document["paths"]["/api/v1/leaderboard"]["get"]["parameters"]
    }
    assert (params["limit"]["minimum"], params["limit"]["maximum"]) == (1, 100)
    assert (params["offset"]["minimum"], params["offset"]["maximum"]) == (0, 10**9)


async def test_bearer_scheme_on_exactly_the_operations_that_take_a_token(
    document: dict[str, Any],
) -> None:
    assert document["components"]["securitySchemes"] == {
        "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    }
    secured = {
        f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if operation.get("security") == [{"bearer": []}]
    }
    # Exactly the operations that can answer 401 for a missing token (logins answer 401 for
    # bad credentials, a refresh for a bad refresh token, and take none).
    takes_token = {name for name, statuses in EXPECTED.items() if 401 in statuses}
    no_bearer = {"POST /api/v1/auth/login", "POST /auth/login", "POST /api/v1/auth/refresh"}
    assert secured == takes_token - no_bearer
    assert "authorization" not in str(document["paths"]).lower().replace("authorize", "")


async def test_operation_ids_are_clean_and_unique(document: dict[str, Any]) -> None:
    ids = [
        operation["operationId"]
        for operations in document["paths"].values()
        for operation in operations.values()
    ]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z0-9_]+", i) and "_api_" not in i for i in ids), ids
    by_route = {
        f"{method.upper()} {path}": operation["operationId"]
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }
    assert by_route["POST /api/v1/scores/events"] == "score_event"
    assert by_route["GET /api/v1/leaderboard"] == "leaderboard"
    assert by_route["POST /auth/login"] == "compat_001_login"
    assert by_route["POST /api/score/update"] == "compat_002_003_score_update"


async def test_compatibility_routes_are_tagged_and_grouped_apart(document: dict[str, Any]) -> None:
    names = [tag["name"] for tag in document["tags"]]
    canonical_tags = ["identity", "scores", "leaderboard", "friends", "admin", "operations"]
    count = len(canonical_tags)
    assert names[:count] == canonical_tags
    assert all(name.startswith("compat: ") for name in names[count:]) and len(names) > count
    assert all(tag["description"] for tag in document["tags"])
    groups = {group["name"]: group["tags"] for group in document["x-tagGroups"]}
    assert groups["Canonical API (/api/v1)"] == names[:count]
    assert groups["Compatibility routes"] == names[count:]
    for path, operations in document["paths"].items():
        for operation in operations.values():
            canonical = path.startswith("/api/v1/") and "compat" not in operation["operationId"]
            ops_route = path in {"/healthz", "/readyz", "/metrics"}
            assert (operation["tags"][0] in names[:count]) == (canonical or ops_route), path


async def test_document_is_byte_identical_to_the_one_before_the_hot_routes(
    tmp_path: Path,
) -> None:
    """Issue 10: the hot routes (`api/hot.py`) answer ahead of FastAPI, whose routes stay the
    document; `fixtures/openapi.json` is the reviewed document (saved before the hot routes
    existed, then regenerated for issue 13's security scheme, operation ids and tags, and for
    issue 11's boards, periods, regions and friends, and for issue 12's server writes, admin
    audit log, moderation, webhooks, sessions, the event log and flags):
    a change to it is a deliberate one."""
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}"
    )
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        r = await http.get("/openapi.json")
    assert r.content == (Path(__file__).parent / "fixtures" / "openapi.json").read_bytes()
