"""API keys and server writes (API.md section 6): `POST /api/v1/users/{user_id}/score-events`
with a scorer or admin key has the semantics of the user's own write; every refusal. On
SQLite, PostgreSQL and Redis (the `api` fixture)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from tests.api.conftest import Api

from scoreboard.service.apikeys import key_hash


async def make_key(api: Api, name: str = "backend", role: str = "scorer") -> dict[str, str]:
    key, record = await api.services.apikeys.create(name, role)
    assert record.key_hash == key_hash(key) and key not in repr(record)
    return {"Authorization": f"Bearer {key}"}


async def write(
    api: Api,
    user_id: str,
    headers: dict[str, str],
    action: str = "TASK_COMPLETED",
    key: str | None = None,
) -> httpx.Response:
    extra = {"Idempotency-Key": key} if key is not None else {}
    return await api.client.post(
        f"/api/v1/users/{user_id}/score-events",
        json={"action_type": action},
        headers=headers | extra,
    )


async def sources(database_url: str) -> list[tuple[str, str | None]]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                sa.text("SELECT user_id, source FROM score_events ORDER BY id")
            )
            return [(row[0], row[1]) for row in rows]
    finally:
        await engine.dispose()


def error_code(r: httpx.Response) -> str:
    code: str = r.json()["error"]["code"]
    return code


async def test_a_scorer_key_writes_for_the_user_as_the_user_would(
    api: Api, database_url: str
) -> None:
    user_id, headers = await api.user()
    scorer = await make_key(api)
    r = await write(api, user_id, scorer)
    assert r.status_code == 201, r.text
    body = r.json()
    own = await api.score(headers)
    assert set(body) == set(own.json())  # the same body as the user's own write
    assert body["user_id"] == user_id and body["awarded_points"] == 10
    assert body["new_score"] == 10 and body["rank"] == 1
    assert {b["scope"] for b in body["boards"]} == {b["scope"] for b in own.json()["boards"]}
    assert own.json()["new_score"] == 20  # one total, whoever wrote
    me = (await api.client.get("/api/v1/leaderboard/me", headers=headers)).json()
    assert me["score"] == 20
    admin = await make_key(api, "ops", "admin")
    assert (await write(api, user_id, admin, "ACHIEVEMENT_UNLOCKED")).json()["new_score"] == 120
    assert await sources(database_url) == [
        (user_id, "apikey:backend"),
        (user_id, "user"),
        (user_id, "apikey:ops"),
    ]


async def test_idempotency_keys_are_the_users_whoever_writes(api: Api) -> None:
    user_id, headers = await api.user()
    scorer = await make_key(api)
    first = await write(api, user_id, scorer, key="order-1")
    again = await write(api, user_id, scorer, key="order-1")
    assert (first.status_code, again.status_code) == (201, 200)
    replay = again.json()
    assert replay.pop("idempotent") is True
    assert replay["event_id"] == first.json()["event_id"]
    conflict = await write(api, user_id, scorer, "ACHIEVEMENT_UNLOCKED", key="order-1")
    assert conflict.status_code == 409 and error_code(conflict) == "IDEMPOTENCY_CONFLICT"
    # The user's own route shares the user's keys: the same request replays, another conflicts.
    own = await api.score(headers, key="order-1")
    assert own.status_code == 200 and own.json()["event_id"] == first.json()["event_id"]
    other_user, _ = await api.user()
    assert (await write(api, other_user, scorer, key="order-1")).status_code == 201
    assert await api.services.store.count_events() == 2


async def test_refusals(api: Api) -> None:
    user_id, headers = await api.user()
    scorer = await make_key(api)
    cases: list[tuple[dict[str, str], int, str]] = [
        ({}, 401, "UNAUTHENTICATED"),
        ({"Authorization": "Bearer sbk_short"}, 401, "UNAUTHENTICATED"),
        ({"Authorization": "Bearer sbk_" + "A" * 43}, 401, "UNAUTHENTICATED"),  # unknown
        ({"Authorization": "Bearer not-a-jwt"}, 401, "UNAUTHENTICATED"),
        (headers, 403, "FORBIDDEN"),  # a user's token, even for themselves
    ]
    for sent, status, code in cases:
        r = await write(api, user_id, sent)
        assert (r.status_code, error_code(r)) == (status, code), (sent, r.text)
    missing = await write(api, "0123456789abcdef", scorer)
    assert (missing.status_code, error_code(missing)) == (404, "NOT_FOUND")
    bad = await write(api, user_id, scorer, "NOT_AN_ACTION")
    assert (bad.status_code, error_code(bad)) == (400, "INVALID_ACTION_TYPE")
    extra = await api.client.post(
        f"/api/v1/users/{user_id}/score-events",
        json={"action_type": "TASK_COMPLETED", "points": 5},
        headers=scorer,
    )
    assert (extra.status_code, error_code(extra)) == (400, "VALIDATION_FAILED")
    long_key = await write(api, user_id, scorer, key="k" * 256)
    assert long_key.status_code == 400
    assert await api.services.store.count_events() == 0
    # The user deletes their account: the key's writes for them are 404 from then on.
    assert (await api.client.delete("/api/v1/users/me", headers=headers)).status_code == 204
    gone = await write(api, user_id, scorer)
    assert (gone.status_code, error_code(gone)) == (404, "NOT_FOUND")


async def test_an_admin_users_token_is_not_a_key(api: Api) -> None:
    user_id, _ = await api.user("boss")
    await api.services.roles.promote("boss", actor="test")
    r = await api.client.post(
        "/api/v1/auth/login", json={"username": "boss", "password": "correct horse"}
    )
    admin = {"Authorization": f"Bearer {r.json()['access_token']}"}
    refused = await write(api, user_id, admin)
    assert (refused.status_code, error_code(refused)) == (403, "FORBIDDEN")


async def test_a_revoked_key_is_refused(api: Api) -> None:
    user_id, _ = await api.user()
    scorer = await make_key(api)
    assert (await write(api, user_id, scorer)).status_code == 201
    await api.services.apikeys.revoke("backend")  # this process forgets it at once
    r = await write(api, user_id, scorer)
    assert (r.status_code, error_code(r)) == (401, "UNAUTHENTICATED")
    assert "revoked" in r.json()["error"]["message"]
    [record] = await api.services.apikeys.list()
    assert record.revoked_at is not None and record.last_used_at is not None


async def test_a_key_is_not_a_users_token(api: Api) -> None:
    scorer = await make_key(api)
    for method, path in (("POST", "/api/v1/scores/events"), ("GET", "/api/v1/leaderboard/me")):
        body = {"action_type": "TASK_COMPLETED"} if method == "POST" else None
        r = await api.client.request(method, path, json=body, headers=scorer)
        assert (r.status_code, error_code(r)) == (401, "UNAUTHENTICATED"), path
        assert "API key" in r.json()["error"]["message"]


async def test_the_users_rate_limit_counts_both_routes(
    database_url: str, api_factory: Callable[..., Any]
) -> None:
    async with api_factory(database_url, rate_limit_score="2/minute") as api:
        user_id, headers = await api.user()
        scorer = await make_key(api)
        assert (await write(api, user_id, scorer)).status_code == 201
        assert (await api.score(headers)).status_code == 201
        limited = await write(api, user_id, scorer)
        assert (limited.status_code, error_code(limited)) == (429, "RATE_LIMITED")
        assert "Retry-After" in limited.headers
        other, _ = await api.user()  # the limit is the user's, not the key's
        assert (await write(api, other, scorer)).status_code == 201
