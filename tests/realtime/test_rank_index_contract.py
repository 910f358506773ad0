"""One contract body for every `RankIndex`: memory and Redis (real Redis, a prefix per test).

The expected order always comes from `domain.ranking.rank_all`, the reference of the one order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from scoreboard.domain.ranking import SCORE_MAX, SCORE_MIN, RankedEntry, Standing, rank_all
from scoreboard.realtime.base import RankIndex
from scoreboard.realtime.memory import MemoryRankIndex
from scoreboard.realtime.redis import RedisRankIndex, decode_member, encode_member


@pytest.fixture(params=["memory", "redis", "cluster"])
def index(request: pytest.FixtureRequest) -> RankIndex:
    """The index under test. Sync, so that it may pull the async Redis fixtures lazily: the
    memory run then needs no Redis at all. `cluster`: on a Redis Cluster of the session's."""
    if request.param == "memory":
        return MemoryRankIndex()
    client = request.getfixturevalue(f"{request.param}_client")
    prefix = request.getfixturevalue(f"{request.param}_prefix")
    return RedisRankIndex(client, prefix, board="global")


def st(user_id: str, score: int, reached_at_us: int = 0, name: str = "") -> Standing:
    return Standing(user_id, name or f"name-{user_id}", score, reached_at_us)


async def load(index: RankIndex, standings: list[Standing]) -> None:
    for standing in standings:
        await index.apply(standing, 0)


async def pages_of(standings: list[Standing], size: int) -> AsyncIterator[list[Standing]]:
    for i in range(0, len(standings), size):
        yield standings[i : i + size]
        await asyncio.sleep(0)  # let concurrent readers run between pages


# A board with ties on score, on reached_at, and ids whose byte order differs from case-folded
# or code-point-naive order: "B" < "a" < "ab" < "b" < "z" < "é" (0xc3 0xa9) by bytes.
TIES = [
    st("b", 10, 5),
    st("a", 10, 5),
    st("B", 10, 5),
    st("ab", 10, 5),
    st("é", 10, 5),
    st("z", 10, 5),
    st("early", 10, 1),
    st("late", 10, 9),
    st("top", 11, 99),
    st("low", 9, 0),
]


async def test_empty_board(index: RankIndex) -> None:
    assert await index.top(10) == []
    assert await index.top(10, 5) == []
    assert await index.count() == 0
    assert await index.entry_of("nobody") is None
    assert await index.around("nobody", 3) == []


async def test_order_with_ties_matches_reference(index: RankIndex) -> None:
    await load(index, TIES)
    expected = rank_all(TIES)
    assert await index.top(100) == expected
    ids = [e.user_id for e in expected]
    assert ids == ["top", "early", "B", "a", "ab", "b", "z", "é", "late", "low"]
    for entry in expected:
        assert await index.entry_of(entry.user_id) == entry
    assert await index.count() == len(TIES)


async def test_apply_moves_a_user(index: RankIndex) -> None:
    await load(index, TIES)
    await index.apply(st("low", 50, 3, name="Low Renamed"), 0)
    first = await index.top(1)
    assert first == [RankedEntry(1, "low", "Low Renamed", 50)]
    assert await index.count() == len(TIES)
    await index.apply(st("low", -1, 3), 0)
    assert (await index.top(100))[-1].user_id == "low"


async def test_versions_stale_and_equal_are_ignored(index: RankIndex) -> None:
    await index.apply(st("u", 5), 2)
    await index.apply(st("u", 1), 1)  # older: ignored
    await index.apply(st("u", 2), 2)  # same version: ignored (idempotent)
    assert await index.entry_of("u") == RankedEntry(1, "u", "name-u", 5)
    await index.apply(st("u", 7), 3)
    assert (await index.entry_of("u")) == RankedEntry(1, "u", "name-u", 7)
    await index.apply(st("u", 8), 0)  # unversioned: always applies
    assert (await index.entry_of("u")) == RankedEntry(1, "u", "name-u", 8)
    await index.apply(st("u", 9), 1)  # the held version is now 0: any version is newer
    assert (await index.entry_of("u")) == RankedEntry(1, "u", "name-u", 9)


async def test_versions_beyond_double_precision(index: RankIndex) -> None:
    big = 2**60
    await index.apply(st("u", 5), big + 1)
    await index.apply(st("u", 1), big)  # differs from big + 1 only below double precision
    assert (await index.entry_of("u")) == RankedEntry(1, "u", "name-u", 5)
    await index.apply(st("u", 6), 10**19)  # longer decimal: newer
    assert (await index.entry_of("u")) == RankedEntry(1, "u", "name-u", 6)


async def test_apply_returns_the_rank_it_leaves(index: RankIndex) -> None:
    for i, standing in enumerate(TIES):
        rank = await index.apply(standing, 1)
        expected = next(e.rank for e in rank_all(TIES[: i + 1]) if e.user_id == standing.user_id)
        assert rank == expected
        held = await index.entry_of(standing.user_id)
        assert held is not None and held.rank == rank
    assert await index.apply(st("low", 12, 0), 2) == 1  # moves to the top
    assert await index.apply(st("low", 0, 0), 1) == 1  # stale: ignored, the held rank
    await index.remove("low")
    assert await index.apply(st("low", 50, 0), 3) is None  # removed users stay out


async def test_rename_changes_the_name_only(index: RankIndex) -> None:
    await load(index, TIES)
    before = await index.top(100)
    await index.rename("early", "Early Renamed")
    await index.rename("nobody", "Ghost")  # not on the board: nothing happens
    after = await index.top(100)
    assert [(e.rank, e.user_id, e.score) for e in after] == [
        (e.rank, e.user_id, e.score) for e in before
    ]
    assert {e.user_id: e.display_name for e in after}["early"] == "Early Renamed"
    assert await index.entry_of("nobody") is None and await index.count() == len(TIES)
    await index.apply(st("early", 10, 1, name="From A Score Event"), 0)
    assert (await index.entry_of("early")) == RankedEntry(2, "early", "From A Score Event", 10)


async def test_page_is_top_and_count_together(index: RankIndex) -> None:
    assert await index.page(10) == ([], 0)
    await load(index, TIES)
    for limit, offset in [(3, 0), (4, 2), (5, 8), (10, 20), (0, 0)]:
        expected = (await index.top(limit, offset), len(TIES))
        assert await index.page(limit, offset) == expected


async def test_remove_then_late_apply_is_ignored(index: RankIndex) -> None:
    await load(index, [st("a", 3), st("b", 2), st("c", 1)])
    await index.remove("b")
    await index.apply(st("b", 100), 99)
    await index.apply(st("b", 100), 0)
    assert await index.entry_of("b") is None
    assert await index.around("b", 1) == []
    assert [e.user_id for e in await index.top(10)] == ["a", "c"]
    assert await index.entry_of("c") == RankedEntry(2, "c", "name-c", 1)
    assert await index.count() == 2
    await index.remove("never-seen")  # no error; and they stay out too
    await index.apply(st("never-seen", 5), 0)
    assert await index.count() == 2


async def test_restore_lifts_the_tombstone(index: RankIndex) -> None:
    await load(index, [st("a", 3), st("b", 2)])
    await index.remove("b")
    await index.restore("b")
    assert await index.entry_of("b") is None  # restoring does not put them back by itself
    await index.apply(st("b", 5), 7)
    assert [e.user_id for e in await index.top(10)] == ["b", "a"]
    await index.restore("never-removed")  # no error
    await index.remove("b")
    await index.apply(st("b", 50), 8)
    assert await index.entry_of("b") is None  # tombstoned again


async def test_top_offsets_at_the_edges(index: RankIndex) -> None:
    board = [st(f"u{i:02d}", 100 - i) for i in range(10)]
    await load(index, board)
    expected = rank_all(board)
    assert await index.top(3) == expected[:3]
    assert await index.top(3, 8) == expected[8:]  # fewer than asked at the end
    assert await index.top(1, 9) == expected[9:]
    assert await index.top(5, 10) == []
    assert await index.top(5, 50) == []
    assert await index.top(0) == []
    assert await index.top(100) == expected
    assert [e.rank for e in await index.top(2, 4)] == [5, 6]


async def test_around_at_the_edges(index: RankIndex) -> None:
    board = [st(f"u{i:02d}", 100 - i) for i in range(6)]
    await load(index, board)
    expected = rank_all(board)
    assert await index.around("u00", 2) == expected[0:3]
    assert await index.around("u05", 2) == expected[3:6]
    assert await index.around("u03", 1) == expected[2:5]
    assert await index.around("u03", 0) == [expected[3]]
    assert await index.around("u02", 50) == expected
    assert await index.around("ghost", 1) == []


async def test_extreme_64_bit_scores(index: RankIndex) -> None:
    board = [
        st("max", SCORE_MAX),
        st("min", SCORE_MIN),
        st("neg-max", -SCORE_MAX),
        st("zero", 0),
        st("minus-one", -1),
        st("one", 1),
        st("max-1", SCORE_MAX - 1),
        st("min+1", SCORE_MIN + 1, 7),
        st("min+1-early", SCORE_MIN + 1, 6),
        st("big-tie", 2**53 + 1),  # not representable as a double
        st("big-tie-2", 2**53),
    ]
    await load(index, board)
    assert await index.top(100) == rank_all(board)
    assert await index.entry_of("min") == RankedEntry(len(board), "min", "name-min", SCORE_MIN)


async def test_replace_all_swaps_and_keeps_versions(index: RankIndex) -> None:
    await index.apply(st("kept", 1), 5)
    await index.apply(st("gone", 2), 5)
    await index.remove("deleted")
    new = [st("kept", 40, 1), st("fresh", 30, 1), st("other", 30, 0)]
    assert await index.replace_all(pages_of(new, 2)) == 3
    assert await index.top(10) == rank_all(new)
    assert await index.entry_of("gone") is None
    await index.apply(st("kept", 0), 5)  # version 5 still held: ignored
    assert await index.entry_of("kept") == RankedEntry(1, "kept", "name-kept", 40)
    await index.apply(st("fresh", 99), 1)  # new to the index: version 0 held, 1 is newer
    assert await index.entry_of("fresh") == RankedEntry(1, "fresh", "name-fresh", 99)
    await index.apply(st("deleted", 1), 0)  # tombstones survive a rebuild
    assert await index.entry_of("deleted") is None
    assert await index.replace_all(pages_of([], 2)) == 0
    assert await index.top(10) == []
    assert await index.count() == 0


async def test_replace_all_is_atomic_for_concurrent_readers(index: RankIndex) -> None:
    old = [st(f"old{i:03d}", i, name="old") for i in range(30)]
    new = [st(f"new{i:03d}", i, name="new") for i in range(120)]
    await load(index, old)
    seen: set[str] = set()
    reads = [0]
    done = asyncio.Event()

    async def reader() -> None:
        while not done.is_set():
            board, total = await index.top(500), await index.count()
            names = {e.display_name for e in board}
            assert names in ({"old"}, {"new"}), "a partial board was visible"
            assert len(board) == (30 if names == {"old"} else 120)
            assert total in (30, 120)
            seen.update(names)
            reads[0] += 1
            await asyncio.sleep(0)

    readers = [asyncio.create_task(reader()) for _ in range(3)]
    await asyncio.sleep(0.01)
    before = reads[0]
    assert await index.replace_all(pages_of(new, 7)) == 120
    assert reads[0] - before >= 10, "readers must run while the rebuild is in flight"
    await asyncio.sleep(0.01)
    done.set()
    await asyncio.gather(*readers)
    assert seen == {"old", "new"}
    assert await index.top(500) == rank_all(new)


# --- Redis only: encoding, marker, cleanup ------------------------------------------------


def test_member_encoding_orders_like_the_domain() -> None:
    a, b = st("a", SCORE_MAX, 0), st("a", SCORE_MIN, 2**64 - 1)
    assert encode_member(a) == b"0" * 32 + b"a"
    assert encode_member(b) == b"f" * 32 + b"a"
    assert decode_member(encode_member(b)) == (SCORE_MIN, "a")
    with pytest.raises(ValueError):
        encode_member(st("a", SCORE_MAX + 1))
    with pytest.raises(ValueError):
        encode_member(st("a", 0, -1))


async def test_redis_marker_and_emptiness(redis_client: aioredis.Redis, redis_prefix: str) -> None:
    index = RedisRankIndex(redis_client, redis_prefix, board="weekly")
    assert await index.is_empty()
    assert await index.marker() is None
    await index.replace_all(pages_of([st("a", 1)], 10))
    generation = await index.marker()
    assert generation is not None
    assert not await index.is_empty()
    await index.replace_all(pages_of([st("a", 1)], 10))
    assert await index.marker() not in (None, generation)
    await index.set_marker("store-epoch-7")
    assert await index.marker() == "store-epoch-7"
    other = RedisRankIndex(redis_client, redis_prefix, board="global")  # boards are separate
    assert await other.is_empty()
    assert await other.marker() is None


async def test_redis_replace_all_leaves_no_temporary_keys(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    index = RedisRankIndex(redis_client, redis_prefix)
    await index.apply(st("a", 1), 0)
    await index.replace_all(pages_of([st(f"u{i}", i) for i in range(20)], 6))
    keys = {k.decode() async for k in redis_client.scan_iter(match=f"{redis_prefix}*")}
    suffixes = {k.rsplit(":", 1)[1] for k in keys}
    # No user of the new board holds a version ("a" left it): no `v` hash, all at version 0.
    assert suffixes == {"z", "m", "n", "marker"}
    assert [await redis_client.ttl(k) for k in sorted(keys)] == [-1] * len(keys)


async def test_redis_versions_applied_during_a_rebuild_are_kept(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    index = RedisRankIndex(redis_client, redis_prefix)
    await index.apply(st("a", 1), 1)

    async def pages() -> AsyncIterator[list[Standing]]:
        yield [st("a", 10)]  # staged with version 1
        await index.apply(st("a", 11), 7)  # lands on the old board while the rebuild runs
        yield [st("b", 5)]

    assert await index.replace_all(pages()) == 2
    await index.apply(st("a", 3), 6)  # older than the version 7 applied meanwhile: ignored
    assert await index.entry_of("a") == RankedEntry(1, "a", "name-a", 10)


async def test_redis_works_with_decoded_responses(redis_url: str, redis_prefix: str) -> None:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        index = RedisRankIndex(client, redis_prefix)
        await load(index, TIES)
        assert await index.top(100) == rank_all(TIES)
        assert await index.around("é", 1) == rank_all(TIES)[6:9]
        await index.replace_all(pages_of(TIES[:3], 2))
        assert await index.top(100) == rank_all(TIES[:3])
        assert await index.marker() is not None
    finally:
        await client.aclose()


async def test_apply_many_equals_apply_one_by_one(index: RankIndex) -> None:
    """A batch lands as its updates in order would (versions, stale ones, tombstones), and
    every update gets its user's rank once the whole batch is applied."""
    await load(index, TIES)
    await index.apply(st("top", 11, 99), 5)
    await index.remove("gone")
    updates = [
        (st("low", 12, 0), 1),  # moves to the top
        (st("top", 1, 99), 4),  # stale (5 is held): ignored
        (st("gone", 99, 0), 1),  # removed users stay out
        (st("new", 10, 3), 1),  # a first score, tied on score with the TIES block
        (st("low", 13, 0), 2),  # the same user again, newer
        (st("low", 2, 0), 2),  # the same version again: ignored
    ]
    ranks = await index.apply_many(updates)
    final = [s for s in TIES if s.user_id != "low"] + [st("low", 13, 0), st("new", 10, 3)]
    expected = rank_all(final)
    assert await index.top(100) == expected
    rank_by_user = {e.user_id: e.rank for e in expected}
    assert ranks == [1, rank_by_user["top"], None, rank_by_user["new"], 1, 1]
    assert await index.apply_many([]) == []


async def test_apply_many_is_one_snapshot_for_readers(index: RankIndex) -> None:
    """Readers see the batch whole or not at all."""
    await load(index, [st(f"u{i}", i) for i in range(50)])
    updates = [(st(f"u{i}", 1000 + i), 0) for i in range(50)]
    seen: list[list[int]] = []

    async def read() -> None:
        for _ in range(20):
            seen.append([e.score for e in await index.top(50)])
            await asyncio.sleep(0)

    await asyncio.gather(read(), index.apply_many(updates), read())
    before, after = sorted(range(50), reverse=True), sorted(range(1000, 1050), reverse=True)
    assert all(scores in (before, after) for scores in seen)
