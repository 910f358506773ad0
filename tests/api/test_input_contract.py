"""Issue 9 items 3 and 6: text that is not text, nested metadata, one `details` shape.

Run on every backend (SQLite, PostgreSQL, PostgreSQL + Redis): a lone surrogate or a NUL gave
500 on SQLite and 503 with Retry-After on PostgreSQL; now it is 400 wherever text comes in,
before any route or backend sees it."""

from __future__ import annotations

import json

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from .conftest import Api

JSON = {"Content-Type": "application/json"}
LONE = ["\\ud800", "\\udfff", "a\\ud83d", "\\ude00b"]  # JSON escapes of unpaired surrogates


def assert_refused(r: httpx.Response) -> dict[str, object]:
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "VALIDATION_FAILED"
    assert isinstance(error.get("details"), list) and error["details"], error
    for problem in error["details"]:
        assert set(problem) >= {"field", "problem"}
    assert "Retry-After" not in r.headers
    return dict(error)


async def count_actions(database_url: str) -> int:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(sa.text("SELECT count(*) FROM actions"))).scalar_one())
    finally:
        await engine.dispose()


@pytest.mark.parametrize("escape", LONE)
async def test_a_lone_surrogate_password_is_400_on_register(api: Api, escape: str) -> None:
    body = f'{{"username": "surrogate1", "password": "password{escape}"}}'
    error = assert_refused(
        await api.client.post("/api/v1/auth/register", content=body, headers=JSON)
    )
    assert "not text" in str(error["message"])
    r = await api.client.post(
        "/api/v1/auth/register", json={"username": "surrogate1", "password": "password"}
    )
    assert r.status_code == 201, "the refused request must not have taken the name"


@pytest.mark.parametrize("route", ["/api/v1/auth/login", "/auth/login"])
async def test_login_answers_known_and_unknown_users_alike(api: Api, route: str) -> None:
    """Any input: the answer for an existing user equals the one for a stranger."""
    await api.user("knownuser")
    for password in ['"pass\\ud800word"', '"pass\\u0000word"', '"x"', '"' + "y" * 5000 + '"']:
        answers = []
        for name in ("knownuser", "nosuchusr"):  # same length: same offsets
            body = f'{{"username": "{name}", "password": {password}}}'
            r = await api.client.post(route, content=body, headers=JSON)
            answers.append((r.status_code, r.json()))
        assert answers[0] == answers[1], (password[:20], answers)
        assert answers[0][0] in (400, 401)


@pytest.mark.parametrize(
    "metadata",
    [
        '{"note": "a\\ud800"}',
        '{"a\\udc00": 1}',
        '{"note": "a\\u0000b"}',
        '{"\\u0000": 1}',
        '{"list": [1, ["\\u0000"]]}',
        '{"deep": ' + "[" * 300 + "]" * 300 + "}",
        '{"deep": ' + '{"a": ' * 9 + "1" + "}" * 9 + "}",
        '{"big": "' + "x" * 5000 + '"}',
    ],
)
async def test_bad_metadata_is_refused_before_anything_is_written(
    api: Api, database_url: str, metadata: str
) -> None:
    user_id, headers = await api.user()
    body = '{"status": "started", "metadata": ' + metadata + "}"
    r = await api.client.post(f"/users/{user_id}/actions", content=body, headers=headers | JSON)
    assert_refused(r)
    assert await count_actions(database_url) == 0


async def test_metadata_within_the_limits_is_stored_and_echoed(api: Api) -> None:
    user_id, headers = await api.user()
    nested: object = 1
    for _ in range(7):
        nested = {"a": nested}
    metadata = {
        "deep": nested,
        "emoji": "\U0001f600",
        "escaped backslash": "\\u0000 is six characters here",
    }
    r = await api.client.post(
        f"/users/{user_id}/actions",
        json={"status": "started", "metadata": metadata},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    assert r.json()["metadata"] == metadata


async def test_paired_surrogate_escapes_are_text(api: Api) -> None:
    body = '{"username": "emoji1", "password": "password", "display_name": "smile \\ud83d\\ude00"}'
    r = await api.client.post("/api/v1/auth/register", content=body, headers=JSON)
    assert r.status_code == 201, r.text
    assert r.json()["display_name"] == "smile \U0001f600"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/leaderboard?scope=%00"),
        ("GET", "/api/v1/leaderboard?scope=global&x=a%00b"),
        ("PUT", "/users/{me}/actions/a%00b"),
        ("POST", "/users/a%00/actions"),
        ("GET", "/healthz?probe=%00"),
    ],
)
async def test_nul_in_a_path_or_query_is_400(
    api: Api, database_url: str, method: str, path: str
) -> None:
    user_id, headers = await api.user()
    body = {"status": "completed"} if method == "PUT" else {"status": "started"}
    r = await api.client.request(
        method, path.format(me=user_id), json=body if method != "GET" else None, headers=headers
    )
    assert_refused(r)
    assert await count_actions(database_url) == 0


async def test_nul_in_a_text_header_is_400_and_writes_nothing(api: Api) -> None:
    _, headers = await api.user()
    r = await api.client.post(
        "/api/v1/scores/events",
        json={"action_type": "TASK_COMPLETED"},
        headers=headers | {"Idempotency-Key": "key\x00one"},
    )
    assert_refused(r)
    assert await api.services.store.count_events() == 0


async def test_nul_in_a_body_string_is_400(api: Api) -> None:
    _, headers = await api.user()
    r = await api.client.post(
        "/api/v1/scores/events", content='{"action_type": "TASK\\u0000"}', headers=headers | JSON
    )
    error = assert_refused(r)
    assert "NUL" in json.dumps(error)
    assert await api.services.store.count_events() == 0


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/leaderboard?limit=1000",
        "/api/v1/leaderboard?offset=-1",
        "/api/v1/leaderboard?limit=abc",
        "/api/v1/leaderboard?offset=99999999999999999999999",
    ],
)
async def test_details_is_one_list_shape_for_range_and_schema_errors(api: Api, path: str) -> None:
    error = assert_refused(await api.client.get(path))
    fields = [problem["field"] for problem in error["details"]]  # type: ignore[index, union-attr]
    assert fields and all(f in ("limit", "offset") for f in fields), fields
