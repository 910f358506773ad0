"""Issue 9 item 6: every failure of a compatibility route comes in that route's own error body,
also those raised before or outside the route (413, a body that cannot be read, 405, NUL in the
query), and the live endpoints refuse text that is not text with an `error` frame."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from tests.compat import Served, auth, serve, user
from tests.e2e.client import LiveClient

JSON = {"Content-Type": "application/json"}
BIG = b'{"score_increment": 1, "pad": "' + b"x" * 20_000 + b'"}'


def style_002_003(body: dict[str, Any]) -> bool:
    return body.get("status") == "error" and "message" in body and "code" in body["error"]


def style_004(body: dict[str, Any]) -> bool:
    return body.get("success") is False and set(body["error"]) == {"code", "message"}


def style_003(body: dict[str, Any]) -> bool:
    return set(body) == {"error"} and set(body["error"]) == {"code", "message"}


def canonical(body: dict[str, Any]) -> bool:
    return set(body) == {"error"} and {"code", "message"} <= set(body["error"])


Check = Callable[[dict[str, Any]], bool]
ROUTES: list[tuple[str, str, Check]] = [
    ("POST", "/api/score/update", style_002_003),
    ("POST", "/api/v1/scores/update", style_004),
]


@pytest.fixture
async def served(database_url: str, tmp_path: Path) -> AsyncIterator[Served]:
    async with serve(database_url, tmp_path) as instance:
        yield instance


@pytest.mark.parametrize(("method", "path", "shaped"), ROUTES)
async def test_body_failures_come_in_the_routes_shape(
    served: Served, method: str, path: str, shaped: Check
) -> None:
    _, token = await user(served.http, "shape")
    headers = auth(token) | JSON
    cases = [
        (413, BIG, headers),  # declared length over the limit
        (400, b"\xff\xfe not utf-8", headers),  # a body that cannot be read as JSON text
        (400, b'{"score_increment": ', headers),  # invalid JSON
        (400, b'{"action_type": "a\\ud800"}', headers),  # a lone surrogate
        (400, b'{"action_type": "a\\u0000"}', headers),  # NUL
        (401, b"{}", JSON),
    ]
    for status, content, sent in cases:
        r = await served.http.request(method, path, content=content, headers=sent)
        assert r.status_code == status, (content[:30], r.text)
        assert shaped(r.json()), (content[:30], r.json())
    r = await served.http.request(method, path + "?x=%00", json={}, headers=auth(token))
    assert r.status_code == 400 and shaped(r.json()), r.text
    r = await served.http.request("GET", path)  # 405: the path exists, not with this method
    assert r.status_code == 405 and shaped(r.json()), r.text


async def test_003_reads_come_in_003s_shape(served: Served) -> None:
    for path, status in [
        ("/api/scores/top?limit=0", 400),
        ("/api/scores/top?limit=%00", 400),
        ("/api/scores/me", 401),
    ]:
        r = await served.http.get(path)
        assert r.status_code == status and style_003(r.json()), (path, r.text)
    r = await served.http.post("/api/scores/top")
    assert r.status_code == 405 and style_003(r.json()), r.text


async def test_canonical_routes_keep_the_canonical_shape(served: Served) -> None:
    r = await served.http.post("/api/v1/scores/events", content=BIG, headers=JSON)
    assert r.status_code == 413 and canonical(r.json())
    r = await served.http.put("/api/v1/leaderboard")
    assert r.status_code == 405 and canonical(r.json())
    r = await served.http.get("/no/such/route")
    assert r.status_code == 404 and canonical(r.json())


async def test_a_nul_header_over_a_real_socket_is_refused(served: Served) -> None:
    """The HTTP parser may refuse it first (400 of its own); it must never reach a backend."""
    _, token = await user(served.http, "hdr")
    import asyncio

    host, port = served.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    body = b'{"action_type": "TASK_COMPLETED"}'
    writer.write(
        b"POST /api/v1/scores/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + token.encode() + b"\r\nIdempotency-Key: a\x00b\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body
    )
    await writer.drain()
    reply = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    assert reply.startswith(b"HTTP/1.1 400"), reply[:200]
    assert await served.services.store.count_events() == 0


@pytest.mark.parametrize("path", ["/ws/leaderboard", "/scoreboard", "/api/ws/leaderboard"])
async def test_live_handshakes_refuse_nul_in_the_query(served: Served, path: str) -> None:
    _, token = await user(served.http, "live")
    live = await LiveClient.open(f"{served.ws_url}{path}?token={token}&format=a%00b")
    await live.closed.wait()
    [frame] = live.messages
    assert frame["type"] == "error" and frame["error"]["code"] == "VALIDATION_FAILED"
    assert isinstance(frame["error"]["details"], list)
    assert live.ws.close_code == 1008


async def test_live_error_frames_carry_details_as_a_list(served: Served) -> None:
    _, token = await user(served.http, "live")
    live = await LiveClient.open(f"{served.ws_url}/ws/leaderboard?token={token}&limit=1000")
    await live.closed.wait()
    [frame] = live.messages
    assert frame["error"]["details"][0]["field"] == "limit", frame
