"""Score events, the catalogue, leaderboard reads and bad input (API.md section 2)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.api.conftest import Api


async def test_catalogue_is_public(api: Api) -> None:
    r = await api.client.get("/api/v1/actions")
    assert r.status_code == 200
    rules = {a["action_type"]: a for a in r.json()}
    assert rules["TASK_COMPLETED"]["points"] == 10


async def test_score_event_shape_and_server_points(api: Api) -> None:
    user_id, headers = await api.user()
    r = await api.score(headers)
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {
        "event_id", "user_id", "action_type", "awarded_points", "new_score", "rank",
        "processed_at", "boards",
    }  # fmt: skip
    assert body["user_id"] == user_id
    assert body["awarded_points"] == 10 and body["new_score"] == 10 and body["rank"] == 1
    assert body["processed_at"].endswith("Z")
    r = await api.score(headers, "ACHIEVEMENT_UNLOCKED")
    assert r.json()["new_score"] == 110


async def test_unknown_action_type(api: Api) -> None:
    _, headers = await api.user()
    r = await api.score(headers, "FOO_BAR")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "INVALID_ACTION_TYPE"
    assert "FOO_BAR" in r.json()["error"]["message"]


async def test_client_cannot_send_points(api: Api) -> None:
    _, headers = await api.user()
    r = await api.client.post(
        "/api/v1/scores/events",
        json={"action_type": "TASK_COMPLETED", "points": 1000000},
        headers=headers,
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "VALIDATION_FAILED"
    assert await api.services.store.count_events() == 0


async def test_idempotent_replay_and_conflict(api: Api) -> None:
    _, headers = await api.user()
    first = await api.score(headers, key="k-1")
    again = await api.score(headers, key="k-1")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json().pop("idempotent") is True
    original = first.json()
    replay = again.json()
    assert {k: replay[k] for k in original if k != "rank"} == {
        k: v for k, v in original.items() if k != "rank"
    }
    conflict = await api.score(headers, "DAILY_LOGIN", key="k-1")
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "IDEMPOTENCY_CONFLICT"
    assert await api.services.store.count_events() == 1


async def test_idempotency_keys_are_per_user(api: Api) -> None:
    _, alice = await api.user()
    _, bob = await api.user()
    assert (await api.score(alice, key="same")).status_code == 201
    assert (await api.score(bob, key="same")).status_code == 201


async def test_concurrent_duplicates_make_one_event(api: Api) -> None:
    _, headers = await api.user()
    responses = await asyncio.gather(*(api.score(headers, key="race") for _ in range(20)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 19 + [201]
    assert len({r.json()["event_id"] for r in responses}) == 1
    assert await api.services.store.count_events() == 1
    me = (await api.client.get("/api/v1/leaderboard/me", headers=headers)).json()
    assert me["score"] == 10


@pytest.mark.parametrize("key", ["", "x" * 256])
async def test_bad_idempotency_key(api: Api, key: str) -> None:
    _, headers = await api.user()
    r = await api.score(headers, key=key)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "VALIDATION_FAILED"


async def test_score_rate_limit(database_url: str, api_factory: Any) -> None:
    async with api_factory(database_url, rate_limit_score="3/minute") as api:
        _, headers = await api.user()
        codes = [(await api.score(headers)).status_code for _ in range(4)]
        assert codes == [201, 201, 201, 429]
        r = await api.score(headers)
        assert r.json()["error"]["code"] == "RATE_LIMITED"
        assert int(r.headers["Retry-After"]) >= 1
        assert await api.services.store.count_events() == 3


async def test_leaderboard_pages_and_ties(api: Api) -> None:
    users = [await api.user() for _ in range(5)]
    for i, (_, headers) in enumerate(users):
        for _ in range(i % 3):  # scores 0,10,20,0,10: ties broken by who got there first
            await api.score(headers)
    r = await api.client.get("/api/v1/leaderboard", params={"limit": 2, "offset": 1})
    assert r.status_code == 200
    page = r.json()
    assert (page["scope"], page["limit"], page["offset"], page["total"]) == ("global", 2, 1, 3)
    assert [e["rank"] for e in page["items"]] == [2, 3]
    assert [e["user_id"] for e in page["items"]] == [users[1][0], users[4][0]]
    assert page["generated_at"].endswith("Z")


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 101}, {"limit": "ten"}, {"offset": -1}, {"offset": "x"}],
)
async def test_leaderboard_bad_params(api: Api, params: dict[str, Any]) -> None:
    r = await api.client.get("/api/v1/leaderboard", params=params)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "VALIDATION_FAILED"


async def test_unknown_scope(api: Api) -> None:
    r = await api.client.get("/api/v1/leaderboard", params={"scope": "galaxy"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "INVALID_SCOPE"


async def test_me_never_scored_and_around(api: Api) -> None:
    me_id, me = await api.user()
    r = await api.client.get("/api/v1/leaderboard/me", headers=me)
    assert r.json() == {
        "scope": "global", "period": {"id": "all", "starts_at": None, "ends_at": None},
        "next_reset_at": None,
        "user_id": me_id, "display_name": r.json()["display_name"], "score": 0,
        "rank": None, "around_me": [],
    }  # fmt: skip
    others = [await api.user() for _ in range(4)]
    for n, (_, headers) in enumerate(others):
        for _ in range(n + 1):
            await api.score(headers)  # 10, 20, 30, 40
    await api.score(me, "ACHIEVEMENT_UNLOCKED")  # 100: rank 1
    await api.score(others[0][1], "ACHIEVEMENT_UNLOCKED")  # 110: rank 1, me 2
    r = await api.client.get("/api/v1/leaderboard/me", params={"around": 2}, headers=me)
    body = r.json()
    assert (body["score"], body["rank"]) == (100, 2)
    assert [e["rank"] for e in body["around_me"]] == [1, 2, 3, 4]
    assert body["around_me"][1]["user_id"] == me_id
    r = await api.client.get("/api/v1/leaderboard/me", params={"around": 51}, headers=me)
    assert r.status_code == 400


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"action_type": ', "application/json"),
        (b"not json at all", "application/json"),
        (b'["TASK_COMPLETED"]', "application/json"),
        (b'{"action_type": 7}', "application/json"),
        (b'{"action_type": null}', "application/json"),
        (b"{}", "application/json"),
    ],
)
async def test_malformed_bodies(api: Api, content: bytes, content_type: str) -> None:
    _, headers = await api.user()
    r = await api.client.post(
        "/api/v1/scores/events",
        content=content,
        headers=headers | {"Content-Type": content_type},
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "VALIDATION_FAILED"
    assert await api.services.store.count_events() == 0


async def test_invalid_json_names_the_body_and_the_place(api: Api) -> None:
    _, headers = await api.user()
    r = await api.client.post(
        "/api/v1/scores/events",
        content=b'{"action_type": ',
        headers=headers | {"Content-Type": "application/json"},
    )
    error = r.json()["error"]
    assert error["message"] == "The request body is not valid JSON."
    [detail] = error["details"]
    assert detail["field"] == "body"
    assert detail["problem"].startswith("JSON decode error at character 16: ")


async def test_json_sent_as_a_form_is_told_to_send_json(api: Api) -> None:
    _, headers = await api.user()
    r = await api.client.post(
        "/api/v1/scores/events",
        content=b'{"action_type": "TASK_COMPLETED"}',
        headers=headers | {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "VALIDATION_FAILED"
    assert "Content-Type: application/json" in error["message"]
    assert await api.services.store.count_events() == 0


async def test_huge_body_is_413_and_writes_nothing(api: Api) -> None:
    _, headers = await api.user()
    big = b'{"action_type": "TASK_COMPLETED", "pad": "' + b"x" * 20000 + b'"}'
    r = await api.client.post("/api/v1/scores/events", content=big, headers=headers)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"

    async def chunks():  # no Content-Length: streamed
        for _ in range(40):
            yield b"x" * 1024

    r = await api.client.post("/api/v1/scores/events", content=chunks(), headers=headers)
    assert r.status_code == 413
    assert await api.services.store.count_events() == 0


async def test_unknown_route_and_method(api: Api) -> None:
    r = await api.client.get("/api/v1/nope")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "NOT_FOUND"
    r = await api.client.put("/api/v1/leaderboard")
    assert r.status_code == 405
    assert "error" in r.json()


async def test_operations_routes(api: Api) -> None:
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}
    ready = await api.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"
    _, headers = await api.user()
    await api.score(headers)
    metrics = (await api.client.get("/metrics")).text
    assert "scoreboard_http_requests_total" in metrics
    assert "scoreboard_commit_batch_size_count" in metrics
    spec = (await api.client.get("/openapi.json")).json()
    assert "/api/v1/scores/events" in spec["paths"]
    assert (await api.client.get("/docs")).status_code == 200
