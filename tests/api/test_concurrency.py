"""50 users × 20 events, concurrently, with duplicate idempotency keys: nothing counted twice,
the totals equal the audit log, and the rank index equals the database.

The client is realistic: one connection per user, all 50 at once (not 1250 requests launched in
the same event loop as the server, which measures only the loop's saturation)."""

from __future__ import annotations

import asyncio
import random

import httpx
from tests.api.conftest import Api

USERS = 50
EVENTS = 20


async def test_concurrent_storm_is_exact(api: Api) -> None:
    users = await asyncio.gather(*(api.user() for _ in range(USERS)))
    # Lifecycle-only actions are not directly scorable (docs/API.md).
    actions = sorted(a.action_type for a in api.services.catalogue.rules() if not a.lifecycle_only)
    rng = random.Random(7)

    async def one_user(u: int, headers: dict[str, str]) -> list[httpx.Response]:
        """One client connection per user, all users at once; every 4th event is sent twice
        at the same instant with the same key, racing itself."""
        out: list[httpx.Response] = []
        for n in range(EVENTS):
            action, key = actions[(u + n) % len(actions)], f"u{u}-e{n}"
            copies = 2 if n % 4 == 0 else 1
            out += await asyncio.gather(
                *(api.score(headers, action, key=key) for _ in range(copies))
            )
            await asyncio.sleep(rng.random() / 100)
        return out

    per_user = await asyncio.gather(*(one_user(u, h) for u, (_, h) in enumerate(users)))
    responses = [r for batch in per_user for r in batch]
    assert {r.status_code for r in responses} <= {200, 201}, {
        r.status_code: r.text for r in responses if r.status_code not in (200, 201)
    }
    accepted = {r.json()["event_id"]: r.json() for r in responses if r.status_code == 201}
    assert len(accepted) == USERS * EVENTS
    assert sum(r.status_code == 200 for r in responses) == USERS * EVENTS // 4

    store = api.services.store
    assert await store.count_events() == USERS * EVENTS
    expected_points = sum(e["awarded_points"] for e in accepted.values())
    assert await store.sum_event_points() == expected_points

    # Sum of scores == sum of the audit log; the index equals SQL, rank for rank.
    sql_page, total = await store.standings_page(100, 0)
    assert total == USERS
    assert sum(s.score for s in sql_page) == expected_points
    index_top = await api.services.board.default_index.top(100)
    assert [(e.user_id, e.score) for e in index_top] == [(s.user_id, s.score) for s in sql_page]

    board = (await api.client.get("/api/v1/leaderboard", params={"limit": 100})).json()
    assert [e["user_id"] for e in board["items"]] == [s.user_id for s in sql_page]
