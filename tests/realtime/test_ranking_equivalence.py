"""Property: for any sequence of updates (with many ties), `MemoryRankIndex`, `RedisRankIndex`
and the reference `domain.ranking.rank_all` agree on top(n), entry_of and around.

Hypothesis drives a sync test; each example runs in its own event loop with its own client
and key prefix, deleted afterwards.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from scoreboard.domain.ranking import SCORE_MAX, SCORE_MIN, RankedEntry, Standing, rank_all
from scoreboard.realtime.base import RankIndex
from scoreboard.realtime.memory import MemoryRankIndex
from scoreboard.realtime.redis import RedisRankIndex

# Few ids, scores and instants, so that ties on score and on reached_at are the common case;
# mixed case and a multi-byte letter, so byte order matters; extremes of the 64-bit range.
USER_IDS = hs.text(alphabet="aAbB_é", min_size=1, max_size=3)
SCORES = hs.one_of(
    hs.integers(-3, 3), hs.sampled_from([SCORE_MIN, SCORE_MIN + 1, -SCORE_MAX, SCORE_MAX])
)
STANDINGS = hs.builds(
    Standing,
    user_id=USER_IDS,
    display_name=hs.sampled_from(["", "Ann", "Bob", "Ünï"]),
    score=SCORES,
    reached_at_us=hs.integers(0, 3),
)


def final_standings(updates: list[Standing]) -> list[Standing]:
    """The last standing of each user: what unversioned applies leave behind."""
    return list({s.user_id: s for s in updates}.values())


async def feed(index: RankIndex, updates: list[Standing], rebuild: bool) -> None:
    if not rebuild:
        for standing in updates:
            await index.apply(standing, 0)
        return
    board = final_standings(updates)

    async def pages() -> AsyncIterator[list[Standing]]:
        for i in range(0, len(board), 3):
            yield board[i : i + 3]

    await index.replace_all(pages())


async def views(index: RankIndex, user_ids: list[str]) -> tuple[object, ...]:
    top = await index.top(len(user_ids) + 1)
    middle = await index.top(2, 1)
    entries = [await index.entry_of(u) for u in user_ids]
    around = [await index.around(u, k) for u in user_ids for k in (0, 1, 2)]
    return top, middle, entries, around, await index.count()


def reference_views(board: list[Standing], user_ids: list[str]) -> tuple[object, ...]:
    ranked = rank_all(board)
    by_user: dict[str, RankedEntry] = {e.user_id: e for e in ranked}

    def around(user_id: str, k: int) -> list[RankedEntry]:
        entry = by_user.get(user_id)
        if entry is None:
            return []
        return ranked[max(0, entry.rank - 1 - k) : entry.rank + k]

    entries = [by_user.get(u) for u in user_ids]
    arounds = [around(u, k) for u in user_ids for k in (0, 1, 2)]
    return ranked, ranked[1:3], entries, arounds, len(ranked)


async def compare(redis_url: str, updates: list[Standing], rebuild: bool) -> None:
    client = aioredis.Redis.from_url(redis_url)
    prefix = f"sbtest:{uuid.uuid4().hex[:10]}:"
    try:
        memory, in_redis = MemoryRankIndex(), RedisRankIndex(client, prefix)
        await feed(memory, updates, rebuild)
        await feed(in_redis, updates, rebuild)
        user_ids = [*sorted({s.user_id for s in updates}), "absent"]
        expected = reference_views(final_standings(updates), user_ids)
        assert await views(memory, user_ids) == expected
        assert await views(in_redis, user_ids) == expected
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(updates=hs.lists(STANDINGS, min_size=0, max_size=25), rebuild=hs.booleans())
def test_memory_redis_and_reference_agree(
    redis_url: str, updates: list[Standing], rebuild: bool
) -> None:
    asyncio.run(compare(redis_url, updates, rebuild))


@pytest.mark.parametrize("rebuild", [False, True])
def test_agree_on_a_dense_tie(redis_url: str, rebuild: bool) -> None:
    """Everyone on one score and one instant: only the id bytes decide."""
    ids = ["b", "B", "a", "A", "_", "é", "ab", "aB", "Ab", "bb", "ba"]
    updates = [Standing(u, u, 1, 1) for u in ids]
    asyncio.run(compare(redis_url, updates, rebuild))
