"""`SCOREBOARD_DB_TIMEOUT_SECONDS` bounds the whole request, not each database call of it.

With PostgreSQL black-holed, a write that arrived while an earlier batch was already waiting on
the database used to wait for that batch to time out, then for its own batch: twice the
setting (4.0 s measured against the documented 2 s). Every write now answers 503 within the
setting plus a margin. This is a correctness bound, not a benchmark: the margin is generous.
"""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import pytest
from tests.e2e.client import new_user
from tests.proxy import TcpProxy, via

from .conftest import Start

pytestmark = pytest.mark.e2e
log = logging.getLogger(__name__)

TIMEOUT = 2.0
BOUND = TIMEOUT * 1.5 + 0.5
SCORE = "/api/v1/scores/events"


async def test_writes_behind_a_stuck_batch_answer_within_the_timeout(
    start: Start, env: dict[str, str], fresh_pg_url: str, pg_proxy: TcpProxy
) -> None:
    server = await start(
        {
            **env,
            "SCOREBOARD_DATABASE_URL": via(fresh_pg_url, pg_proxy),
            "SCOREBOARD_DB_TIMEOUT_SECONDS": str(TIMEOUT),
        }
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        tokens = [(await new_user(http, "budget"))[1] for _ in range(6)]
        for token in tokens:  # every account is now in the (5 s) account cache
            r = await http.post(
                SCORE,
                json={"action_type": "TASK_COMPLETED"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 201

        pg_proxy.blackhole()

        async def write(n: int) -> tuple[int, float]:
            await asyncio.sleep(0.3 * n)  # each one arrives while the first batch still waits
            began = time.monotonic()
            r = await http.post(
                SCORE,
                json={"action_type": "DAILY_LOGIN"},
                headers={"Authorization": f"Bearer {tokens[n]}"},
            )
            took = time.monotonic() - began
            if r.status_code == 503:
                assert r.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
                assert int(r.headers["Retry-After"]) >= 1
            return r.status_code, took

        results = await asyncio.gather(*(write(n) for n in range(len(tokens))))
        log.warning("black-holed writes: %s", [(code, round(t, 2)) for code, t in results])
        assert {code for code, _ in results} == {503}
        assert max(took for _, took in results) <= BOUND, results

        await pg_proxy.restore()

    # Nothing that was answered 503 before any batch took it was written later.
    from .conftest import event_ids

    assert len(await event_ids(fresh_pg_url)) <= len(tokens) + 1
