"""Several `scoreboard serve` processes on one PostgreSQL and one Redis behave as one service:
live updates cross processes, rate limits and idempotency keys hold across them, and every
process serves the same leaderboard, equal to SQL's. The same on a Redis Cluster
(`redis+cluster://`, the session's three masters and three replicas)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from tests.e2e.client import LiveClient, new_user

from .conftest import Start, board_items, event_ids, sql_board

pytestmark = pytest.mark.e2e

SCORE = "/api/v1/scores/events"


@pytest.fixture(params=["redis", "cluster"])
def env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The scaled environment on one Redis, then on a Redis Cluster."""
    name = "env" if request.param == "redis" else "cluster_env"
    return dict(request.getfixturevalue(name))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_three_processes_behave_as_one(
    start: Start, env: dict[str, str], fresh_pg_url: str
) -> None:
    # Started together: one rebuilds the index at start-up, the others join its rebuild.
    limited = {**env, "SCOREBOARD_RATE_LIMIT_SCORE": "3/minute"}
    servers = await asyncio.gather(*(start(limited, name) for name in ("a", "b", "c")))
    https = [httpx.AsyncClient(base_url=s.url) for s in servers]
    a, b, c = https
    try:
        # A live client on B sees the event posted to A.
        user_id, token = await new_user(a, "multi")
        live = await LiveClient.open(f"{servers[1].ws_url}/ws/leaderboard?token={token}")
        await live.wait_for(lambda m: m["type"] == "snapshot")
        r = await a.post(SCORE, json={"action_type": "TASK_COMPLETED"}, headers=bearer(token))
        assert r.status_code == 201, r.text
        update = await live.wait_for(
            lambda m: m["type"] == "update" and [i["user_id"] for i in m["items"]] == [user_id]
        )
        assert update["items"][0]["score"] == r.json()["new_score"]

        # One rate limit across processes: 3/minute, hits spread over A, B and C.
        _, limited_token = await new_user(b, "limited")
        codes = []
        for http in (a, b, c, a, b):
            r = await http.post(
                SCORE, json={"action_type": "DAILY_LOGIN"}, headers=bearer(limited_token)
            )
            codes.append(r.status_code)
            if r.status_code == 429:
                assert int(r.headers["Retry-After"]) >= 1
                assert r.json()["error"]["code"] == "RATE_LIMITED"
        assert codes == [201, 201, 201, 429, 429]

        # One idempotency key sent to A and B at the same moment: one event.
        for n in range(2):
            _, racer = await new_user(c, "racer")
            headers = bearer(racer) | {"Idempotency-Key": f"race-{n}"}
            body = {"action_type": "ACHIEVEMENT_UNLOCKED"}
            both = await asyncio.gather(
                *(h.post(SCORE, json=body, headers=headers) for h in https[:2])
            )
            assert sorted(r.status_code for r in both) == [200, 201], [r.text for r in both]
            assert both[0].json()["event_id"] == both[1].json()["event_id"]
            assert [r.json().get("idempotent") for r in both if r.status_code == 200] == [True]

        # Every process serves the board SQL computes.
        expected, total = await sql_board(fresh_pg_url)
        assert total == 4 and len(await event_ids(fresh_pg_url)) == 1 + 3 + 2
        for http in https:
            body = (await http.get("/api/v1/leaderboard", params={"limit": 100})).json()
            assert (board_items(body), body["total"]) == (expected, total)
        top = [e.as_dict() for e in expected[:10]]
        await live.wait_for(lambda m: m["type"] == "update" and m["items"] == top)
        assert live.last_board() == top
        await live.close()
    finally:
        for http in https:
            await http.aclose()
