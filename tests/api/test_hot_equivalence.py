"""Issue 10: the hot routes (`api/hot.py`) answer exactly as the FastAPI routes do.

One corpus of requests (valid ones and every invalid variant we could think of) is sent, in
order, to an app with the hot routes and to one without them, each on its own copy of the same
seeded database and secret (so event ids, scores, ranks and tokens are the same); the answers
are compared for status, headers and body, byte for byte. Only the clock differs between the
two runs: RFC 3339 timestamps in bodies are masked, nothing else. The request metrics are
compared too (same labels, same counts).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from tests.api.conftest import make_settings
from tests.conftest import lifespan

from scoreboard.app import create_app
from scoreboard.config import Settings
from scoreboard.service.targets import MAX_OFFSET
from scoreboard.service.tokens import TokenIssuer, load_or_create_secret

Request = tuple[str, str, dict[str, Any], Any]
Answer = tuple[int, list[tuple[str, str]], bytes]
STAMP = re.compile(rb'"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)"')
EVENTS, BOARD, MINE = "/api/v1/scores/events", "/api/v1/leaderboard", "/api/v1/leaderboard/me"
JSON = {"Content-Type": "application/json"}
OK_BODY = b'{"action_type":"TASK_COMPLETED"}'


def _settings(data: Path) -> Settings:
    return make_settings(f"sqlite+aiosqlite:///{data / 'scoreboard.db'}", data)


async def _seed(data: Path) -> dict[str, str]:
    """Users with scores, and the tokens the corpus uses: {name: token}."""
    settings = _settings(data)
    app = create_app(settings, hot_routes=False)
    tokens: dict[str, str] = {}
    async with lifespan(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            for name in ("alice", "bob", "carol", "gone"):
                body = {"username": name, "password": "correct horse"}
                assert (await http.post("/api/v1/auth/register", json=body)).status_code == 201
                r = await http.post("/api/v1/auth/login", json=body)
                tokens[name] = r.json()["access_token"]
            for name, times in (("alice", 3), ("bob", 1)):
                for _ in range(times):
                    auth = {"Authorization": f"Bearer {tokens[name]}"}
                    r = await http.post(
                        EVENTS, json={"action_type": "TASK_COMPLETED"}, headers=auth
                    )
                    assert r.status_code == 201, r.text
            gone = {"Authorization": f"Bearer {tokens['gone']}"}
            assert (await http.delete("/api/v1/users/me", headers=gone)).status_code == 204
    secret = load_or_create_secret(settings)
    subject = jwt.decode(tokens["alice"], options={"verify_signature": False})["sub"]
    expired = TokenIssuer(secret, issuer=settings.jwt_issuer, ttl_seconds=-60)
    tokens["expired"] = expired.issue(subject)[0]
    signature = tokens["alice"][-4:]
    tokens["tampered"] = tokens["alice"][:-4] + ("AAAA" if signature != "AAAA" else "BBBB")
    foreign = TokenIssuer("y" * 64, issuer=settings.jwt_issuer, ttl_seconds=60)
    tokens["foreign"] = foreign.issue(subject)[0]
    return tokens


async def _chunks() -> AsyncIterator[bytes]:
    yield b'{"action_type":'
    yield b'"TASK_COMPLETED"}'


def corpus(tokens: dict[str, str]) -> list[Request]:
    def bearer(name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[name]}"}

    alice, bob = bearer("alice"), bearer("bob")
    reads: list[Request] = []
    for query in (
        "",
        "?limit=10",
        "?limit=1",
        "?limit=100",
        "?limit=0",
        "?limit=101",
        "?limit=abc",
        "?limit=",
        "?limit",
        "?limit=5&limit=6",
        "?limit=010",
        "?limit=+5",
        "?limit=-1",
        "?limit=%35",
        "?limit=5.0",
        "?limit=99999999999999",
        "?limit=\u0665".encode().decode(),
        "?offset=0",
        "?offset=1",
        "?offset=2&limit=1",
        "?offset=-1",
        f"?offset={MAX_OFFSET}",
        f"?offset={MAX_OFFSET + 1}",
        "?offset=abc",
        "?scope=global",
        "?scope=weekly",
        "?scope=",
        "?scope=gl%6Fbal",
        "?scope=a+b",
        "?scope=global&scope=global",
        "?scope=weekly&limit=0",
        "?other=1",
        "?limit=3&other=x",
        "?&limit=3",
        "?limit=3&",
        "?offset=1&scope=weekly",
        "?LIMIT=3",
    ):
        reads.append(("GET", BOARD + query, {}, None))
    for query in (
        "",
        "?around=0",
        "?around=50",
        "?around=51",
        "?around=-1",
        "?around=abc",
        "?around=",
        "?scope=weekly",
        "?scope=global&around=2",
        "?around=1&around=2",
        "?x=1",
    ):
        reads.append(("GET", MINE + query, alice, None))
        reads.append(("GET", MINE + query, {}, None))
    for name in ("bob", "carol", "gone", "expired", "tampered", "foreign"):
        reads.append(("GET", MINE, bearer(name), None))
    for auth in (
        "",
        "Bearer",
        "Bearer ",
        "Basic abc",
        "bearer " + tokens["alice"],
        "Bearer  x.y.z",
        "Token " + tokens["alice"],
        "Bearer " + tokens["alice"] + " extra",
    ):
        reads.append(("GET", MINE, {"Authorization": auth}, None))
    reads.append(("GET", MINE + "?around=abc", {"Authorization": "Basic x"}, None))
    reads += [
        ("HEAD", BOARD, {}, None),
        ("OPTIONS", BOARD, {}, None),
        ("POST", BOARD, {}, None),
        ("GET", BOARD + "/", {}, None),
        ("GET", MINE + "/", alice, None),
        ("HEAD", MINE, alice, None),
        ("GET", BOARD, {"Content-Type": "text/plain"}, b"ignored body"),
        ("GET", BOARD + "?scope=%00", {}, None),
        ("GET", BOARD, {"X-Odd": "a\x00b"}, None),
    ]
    writes: list[Request] = []
    for body in (
        OK_BODY,
        b'{"action_type": "TASK_COMPLETED"}',
        b'{"action_type":"NOPE"}',
        b'{"action_type":"QUIZ_PASSED"}',
        b'{"action_type":""}',
        b'{"action_type":1}',
        b'{"action_type":null}',
        b'{"action_type":["TASK_COMPLETED"]}',
        b'{"action_type":"TASK_COMPLETED","x":1}',
        b"{}",
        b"[]",
        b'"TASK_COMPLETED"',
        b"null",
        b"",
        b"{",
        b"not json",
        b'{"action_type":"TASK\\u0000"}',
        b'{"action_type":"\\ud800"}',
        b'{"ACTION_TYPE":"x"}',
        b'{"action_type":"TASK_COMPLETED","action_type":"NOPE"}',
        b"\xff\xfe",
        b'{"action_type":"TASK_COMPLETED"}   ',
        b"x" * 20000,
    ):
        writes.append(("POST", EVENTS, JSON | alice, body))
    for ctype in (
        None,
        "text/plain",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        "application/vnd.api+json",
        "application/x-www-form-urlencoded",
        "",
    ):
        headers = alice | ({"Content-Type": ctype} if ctype is not None else {})
        writes.append(("POST", EVENTS, headers, OK_BODY))
    for name in ("bob", "carol", "gone", "expired", "tampered", "foreign"):
        writes.append(("POST", EVENTS, JSON | bearer(name), OK_BODY))
    for auth in ("", "Bearer", "Basic abc", "bearer " + tokens["bob"]):
        writes.append(("POST", EVENTS, JSON | {"Authorization": auth}, OK_BODY))
    writes.append(("POST", EVENTS, JSON, OK_BODY))
    writes.append(("POST", EVENTS, JSON, b"{"))  # bad JSON before authentication
    writes.append(("POST", EVENTS, JSON, b'{"action_type":1}'))
    for key in ("k1", "k1", "k" * 255, "k" * 256, "", "tab\there", "ключ".encode()):
        writes.append(("POST", EVENTS, JSON | alice | {"Idempotency-Key": key}, OK_BODY))
    writes += [
        ("POST", EVENTS, JSON | alice | {"Idempotency-Key": "k1"}, b'{"action_type":"NOPE"}'),
        ("POST", EVENTS, JSON | bob | {"Idempotency-Key": "k1"}, OK_BODY),
        (
            "POST",
            EVENTS,
            JSON | alice | {"Idempotency-Key": "k2"},
            b'{"action_type":"DAILY_LOGIN"}',
        ),
        ("POST", EVENTS, JSON | alice | {"Idempotency-Key": "k2"}, OK_BODY),  # conflict
        ("POST", EVENTS + "?x=1", JSON | alice, OK_BODY),
        ("POST", EVENTS + "/", JSON | alice, OK_BODY),
        ("PUT", EVENTS, JSON | alice, OK_BODY),
        ("GET", EVENTS, alice, None),
        ("HEAD", EVENTS, alice, None),
        ("OPTIONS", EVENTS, alice, None),
        ("POST", EVENTS, JSON | alice, "chunked"),
        ("POST", EVENTS, JSON | alice | {"Content-Length": "99999"}, OK_BODY),
        ("POST", EVENTS, JSON | alice | {"X-Odd": "a\x00b"}, OK_BODY),
        ("GET", BOARD, {}, None),
        ("GET", BOARD + "?offset=1", {}, None),
        ("GET", MINE + "?around=3", alice, None),
    ]
    return reads + writes


async def _run(data: Path, requests: list[Request], *, hot: bool) -> tuple[list[Answer], bytes]:
    app = create_app(_settings(data), hot_routes=hot)
    answers: list[Answer] = []
    async with lifespan(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            for n, (method, url, headers, body) in enumerate(requests):
                content = _chunks() if body == "chunked" else body
                # A request id of its own per request, the same on both apps (the layer
                # would make up a different one for each).
                headers = {"x-request-id": f"eq-{n}", **(headers or {})}
                r = await http.request(method, url, headers=headers, content=content)
                assert r.headers["x-request-id"] == headers["x-request-id"]
                kept = [(k, v) for k, v in r.headers.multi_items() if k != "date"]
                answers.append((r.status_code, kept, STAMP.sub(b'"<time>"', r.content)))
        metrics = app.state.metrics.render()
    counts = b"\n".join(
        line
        for line in metrics.splitlines()
        if line.startswith(b"scoreboard_http_requests_total{")
        or line.startswith(b"scoreboard_http_request_seconds_count{")
    )
    return answers, counts


@pytest.fixture
async def seeded(tmp_path: Path) -> AsyncIterator[tuple[Path, dict[str, str]]]:
    seed = tmp_path / "seed"
    seed.mkdir()
    tokens = await _seed(seed)
    yield seed, tokens


async def test_hot_routes_answer_as_the_fastapi_routes(
    seeded: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    seed, tokens = seeded
    requests = corpus(tokens)
    shutil.copytree(seed, tmp_path / "hot")
    shutil.copytree(seed, tmp_path / "slow")
    hot, hot_metrics = await _run(tmp_path / "hot", requests, hot=True)
    slow, slow_metrics = await _run(tmp_path / "slow", requests, hot=False)
    for request, fast_answer, slow_answer in zip(requests, hot, slow, strict=True):
        assert fast_answer == slow_answer, request
    assert hot_metrics == slow_metrics
    # The corpus reaches what it means to: successes, replays and the errors of each route.
    statuses = {status for status, _, _ in hot}
    assert {200, 201, 307, 400, 401, 405, 409, 413} <= statuses, statuses
