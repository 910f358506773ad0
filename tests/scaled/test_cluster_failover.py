"""A Redis Cluster master killed during a write storm (issue 14).

Two `scoreboard serve` processes on PostgreSQL and a cluster of the test's own (three masters,
three replicas, `cluster-node-timeout` 1 s); live clients on both; a storm of score writes
through both; mid-storm the master serving the global board's slot is SIGKILLed and its
replica promoted. Then:

- every response was 201/200, or 503 sent between the kill and the promotion plus
  `DETECTION` (never after): never a 500, never a connection error;
- every acknowledged event is in PostgreSQL;
- the index is repaired (it equals SQL, read from the new master directly), every process
  serves SQL's board, and every live client's last message per board equals the REST read.

The failover's figures are printed (docs/SCALING.md, "Redis Cluster", quotes them).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from tests.cluster import ThrowawayCluster
from tests.conftest import require_commands
from tests.e2e.client import LiveClient, new_user

from scoreboard.backends import SharedRedisIndex
from scoreboard.realtime.redis_cluster import cluster_client

from .conftest import SCALED_ENV, Start, board_items, event_ids, sql_board

pytestmark = pytest.mark.e2e

SCORE = "/api/v1/scores/events"
ACTIONS = ["TASK_COMPLETED", "DAILY_LOGIN", "ACHIEVEMENT_UNLOCKED", "level_complete"]
PREFIX = "sbfail:"
GLOBAL = "global:all:"  # the global board's view key: its keys are `rank:{global:all:}:*`
AFTER_PROMOTION = 3.0  # seconds the storm goes on once the replica is promoted
# A 503 may be sent at most this long after the test saw the promotion (`wait_ok`): the
# processes learn of it only at their next call to the slot's node (a failed call marks the
# slot map stale; upkeep polls every 0.1 s here), and a request sent just before they did
# may still meet the dead master. Writes after that are acknowledged: they never wait for the
# index's rebuild (their ranks come from SQL once per batch, `service.batch_ranks`), and the
# processes rebuild each view once, not in turns (`service.upkeep`). Before that fix 503s came
# up to 3.9 s after the promotion, while the processes rebuilt in turns.
DETECTION = 1.0


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[ThrowawayCluster]:
    require_commands("redis-server", "redis-cli")
    own = ThrowawayCluster(tmp_path / "cluster")
    try:
        await asyncio.to_thread(own.start)
        yield own
    finally:
        own.stop()


@dataclass
class Storm:
    """What the writers saw: (sent, answered, status) per request, connection errors, ids."""

    answers: list[tuple[float, float, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)  # the 503s' bodies
    acknowledged: set[int] = field(default_factory=set)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    under_way: asyncio.Event = field(default_factory=asyncio.Event)  # 30 acknowledged

    async def writer(self, http: httpx.AsyncClient, token: str) -> None:
        rng = random.Random(token)
        headers = {"Authorization": f"Bearer {token}"}
        while not self.stop.is_set():
            sent = time.monotonic()
            try:
                r = await http.post(
                    SCORE, json={"action_type": rng.choice(ACTIONS)}, headers=headers
                )
            except httpx.HTTPError as exc:
                self.errors.append(repr(exc))
                await asyncio.sleep(0.05)
                continue
            self.answers.append((sent, time.monotonic(), r.status_code))
            if r.status_code in (200, 201):
                self.acknowledged.add(r.json()["event_id"])
                if len(self.acknowledged) >= 30:
                    self.under_way.set()
            elif r.status_code == 503:
                self.refusals.append(r.text)
                await asyncio.sleep(0.05)


def last_of(client: LiveClient, scope: str) -> list[object]:
    boards = [
        m
        for m in client.messages
        if m.get("type") in ("snapshot", "update") and m.get("scope") == scope
    ]
    return list(boards[-1]["items"]) if boards else []


async def index_top(url: str) -> list[object]:
    """The global board's index on the cluster, read directly (checked: a lost one raises)."""
    client = cluster_client(url, 5.0)
    try:
        return list(await SharedRedisIndex(client, PREFIX, board=GLOBAL).top(100))
    finally:
        await client.aclose()


async def test_a_master_killed_during_a_write_storm(
    start: Start, fresh_pg_url: str, cluster: ThrowawayCluster
) -> None:
    env = {
        **SCALED_ENV,
        "SCOREBOARD_DATABASE_URL": fresh_pg_url,
        "SCOREBOARD_REDIS_URL": cluster.url,
        "SCOREBOARD_REDIS_PREFIX": PREFIX,
        "SCOREBOARD_RECONCILE_SECONDS": "0",  # the repair must come from the failover's errors
    }
    servers = await asyncio.gather(start(env, "a"), start(env, "b"))
    https = [httpx.AsyncClient(base_url=s.url, timeout=30) for s in servers]
    storm = Storm()
    try:
        users = [await new_user(https[i % 2], "fail") for i in range(8)]
        lives = [
            (await LiveClient.open(f"{servers[i].ws_url}/ws/leaderboard?token={t}&{q}"), scope)
            for i, t, q, scope in (
                (0, users[0][1], "limit=10", "global"),
                (1, users[1][1], "limit=10", "global"),
                (1, users[2][1], "scope=weekly&limit=5", "weekly"),
            )
        ]
        for live, scope in lives:
            await live.wait_for(lambda m, s=scope: m["type"] == "snapshot" and m["scope"] == s)

        probe = cluster_client(cluster.url, 5.0)
        await probe.initialize()
        victim = cluster.master_of(probe.keyslot(f"{PREFIX}rank:{{{GLOBAL}}}:z"))
        await probe.aclose()

        writers = [
            asyncio.create_task(storm.writer(https[(n + k) % 2], token))
            for n, (_, token) in enumerate(users)
            for k in range(2)
        ]
        async with asyncio.timeout(60):  # mid-storm by what was acknowledged, not a delay
            await storm.under_way.wait()
        killed = time.monotonic()
        cluster.kill(victim)
        await asyncio.to_thread(cluster.wait_ok)
        promoted = time.monotonic()
        await asyncio.sleep(AFTER_PROMOTION)
        storm.stop.set()
        await asyncio.gather(*writers)
        ended = time.monotonic()

        codes = sorted({status for _, _, status in storm.answers})
        failed = [(s - killed, a - killed) for s, a, status in storm.answers if status == 503]
        after = sum(1 for s, _, _ in storm.answers if s > promoted)
        during = sum(1 for s, _, c in storm.answers if killed < s < promoted and c != 503)
        late = max((s - (promoted - killed) for s, _ in failed), default=None)
        slowest = max((a - s for s, a, _ in storm.answers if s > promoted), default=0.0)
        print(
            f"\ncluster failover: promoted {promoted - killed:.1f} s after the kill; "
            f"{len(storm.answers)} answers ({during} acknowledged between the kill and the "
            f"promotion, {after} sent after it), "
            f"{len(storm.acknowledged)} acknowledged, {len(failed)} × 503"
            + (
                f" within {min(s for s, _ in failed):.1f}..{max(a for _, a in failed):.1f} s "
                "of the kill"
                if failed
                else ""
            )
            + ("" if late is None else f", the last sent {late:+.1f} s from the promotion")
            + f"; slowest answer to a write sent after the promotion {slowest:.2f} s"
        )
        for body in sorted(set(storm.refusals)):
            print(f"cluster failover: 503 {body}")
        assert storm.errors == []
        assert set(codes) <= {200, 201, 503}, codes
        assert after > 0  # writes went on after the failover
        window = (0.0, promoted - killed + DETECTION)  # since the kill
        outside = [(s, a) for s, a in failed if not (window[0] <= a and s <= window[1])]
        assert outside == [], f"503s outside {window} s of the kill: {outside}"

        stored = await event_ids(fresh_pg_url)
        assert storm.acknowledged <= stored, f"{len(storm.acknowledged - stored)} lost"

        expected, total = await sql_board(fresh_pg_url)
        began = time.monotonic()
        while True:  # the index repaired: rebuilt from PostgreSQL on the promoted replica
            try:
                if await index_top(cluster.url) == expected:
                    break
            except Exception:  # lost or unreachable until repaired
                pass
            assert time.monotonic() - began < 60, "the index was not repaired"
            await asyncio.sleep(0.2)
        print(f"cluster failover: index equal to SQL {time.monotonic() - ended:.1f} s after")
        # It was repaired, not merely spared: the processes saw it fail and rebuilt it.
        logs = "".join(server.log() for server in servers)
        assert "rank index unusable" in logs
        for http in https:
            body = (await http.get("/api/v1/leaderboard", params={"limit": 100})).json()
            assert (board_items(body), body["total"]) == (expected, total)
        for live, scope in lives:
            limit = 10 if scope == "global" else 5
            r = await https[0].get("/api/v1/leaderboard", params={"scope": scope, "limit": limit})
            items = r.json()["items"]
            await live.wait_for(
                lambda m, s=scope, i=items: m.get("scope") == s and m.get("items") == i, within=30
            )
            assert last_of(live, scope) == items
            await live.close()
    finally:
        storm.stop.set()
        for http in https:
            await http.aclose()
