"""Register, login, delete: shapes and error codes of API.md section 2 (Identity)."""

from __future__ import annotations

from typing import Any

import pytest
from tests.api.conftest import Api


async def test_register_and_login_shapes(api: Api) -> None:
    r = await api.client.post(
        "/api/v1/auth/register",
        json={"username": "alice", "password": "s3cret-pass", "display_name": "Alice A."},
    )
    assert r.status_code == 201
    body = r.json()
    assert set(body) == {"user_id", "username", "display_name"}
    assert body["username"] == "alice" and body["display_name"] == "Alice A."
    assert isinstance(body["user_id"], str)

    r = await api.client.post(
        "/api/v1/auth/login", json={"username": "alice", "password": "s3cret-pass"}
    )
    assert r.status_code == 200
    token = r.json()
    assert token["token_type"] == "bearer" and token["expires_in"] > 0
    assert token["access_token"].count(".") == 2


async def test_duplicate_username(api: Api) -> None:
    await api.user("bob")
    r = await api.client.post(
        "/api/v1/auth/register", json={"username": "bob", "password": "another-pass"}
    )
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "USERNAME_TAKEN"


@pytest.mark.parametrize(
    "body",
    [
        {"username": "ab", "password": "long enough"},
        {"username": "has space", "password": "long enough"},
        {"username": "x" * 33, "password": "long enough"},
        {"username": "carol", "password": "short"},
        {"username": "carol", "password": "p" * 129},
        {"username": "carol"},
        {"username": 12345, "password": "long enough"},
        {"username": "carol", "password": "long enough", "is_admin": True},
    ],
)
async def test_register_validation(api: Api, body: dict[str, Any]) -> None:
    r = await api.client.post("/api/v1/auth/register", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "VALIDATION_FAILED"


async def test_wrong_credentials(api: Api) -> None:
    await api.user("dave")
    for body in (
        {"username": "dave", "password": "wrong password"},
        {"username": "nobody", "password": "whatever!"},
    ):
        r = await api.client.post("/api/v1/auth/login", json=body)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "INVALID_CREDENTIALS"


async def test_login_is_rate_limited(database_url: str, api_factory: Any) -> None:
    async with api_factory(database_url, rate_limit_login="3/minute") as api:
        await api.user("erin")  # one login
        codes = []
        for _ in range(4):
            r = await api.client.post(
                "/api/v1/auth/login", json={"username": "erin", "password": "bad password"}
            )
            codes.append(r.status_code)
        assert codes[-1] == 429, codes
        assert r.json()["error"]["code"] == "RATE_LIMITED"
        assert int(r.headers["Retry-After"]) >= 1


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer not-a-jwt", "Basic abc", "Bearer a.b.c", "bearer   "],
)
async def test_bad_tokens_are_401(api: Api, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    r = await api.client.post(
        "/api/v1/scores/events", json={"action_type": "TASK_COMPLETED"}, headers=headers
    )
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "UNAUTHENTICATED"
    assert await api.services.store.count_events() == 0


async def test_delete_me_leaves_board_keeps_audit(api: Api) -> None:
    _gone, gone_headers = await api.user()
    stays, stays_headers = await api.user()
    assert (await api.score(gone_headers)).status_code == 201
    assert (await api.score(stays_headers, "DAILY_LOGIN")).status_code == 201

    r = await api.client.delete("/api/v1/users/me", headers=gone_headers)
    assert r.status_code == 204
    board = (await api.client.get("/api/v1/leaderboard")).json()
    assert [e["user_id"] for e in board["items"]] == [stays]
    assert board["total"] == 1
    assert await api.services.store.count_events() == 2  # the audit log keeps both

    r = await api.score(gone_headers)
    assert r.status_code == 401
    r = await api.client.delete("/api/v1/users/me", headers=gone_headers)
    assert r.status_code == 401
