"""One contract body for every `RankIndexes`: memory and Redis (real Redis, a prefix per test).

Redis views are checked indexes (`SharedRedisIndex`): a view serves ranks once a rebuild set
its generation marker, so every test first rebuilds its views empty (`ready`), as the
service's `IndexKeeper` does at start. Expected orders come from `domain.ranking.rank_all`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs
from redis.asyncio.connection import Connection, ConnectionPool
from redis.exceptions import ResponseError

from scoreboard.domain.ranking import RankedEntry, Standing, rank_all
from scoreboard.realtime.base import RankIndexes
from scoreboard.realtime.memory import MemoryRankIndexes
from scoreboard.realtime.redis_index import KEY_SUFFIXES
from scoreboard.realtime.redis_indexes import RedisRankIndexes, pipelined

Batch = list[tuple[Standing, int]]


@pytest.fixture(params=["memory", "redis", "cluster"])
def indexes(request: pytest.FixtureRequest) -> RankIndexes:
    """The storage under test. Sync, so that the memory run needs no Redis at all.
    `cluster`: on the session's Redis Cluster."""
    if request.param == "memory":
        return MemoryRankIndexes()
    client = request.getfixturevalue(f"{request.param}_client")
    return RedisRankIndexes(client, request.getfixturevalue(f"{request.param}_prefix"))


@pytest.fixture(params=["redis", "cluster"])
def server(request: pytest.FixtureRequest) -> tuple[aioredis.Redis, str]:
    """(client, key prefix of the test's own) on one Redis, then on a Redis Cluster."""
    client = request.getfixturevalue(f"{request.param}_client")
    return client, request.getfixturevalue(f"{request.param}_prefix")


def st(user_id: str, score: int, reached_at_us: int = 0) -> Standing:
    return Standing(user_id, f"name-{user_id}", score, reached_at_us)


async def nothing() -> AsyncIterator[list[Standing]]:
    return
    yield


async def ready(indexes: RankIndexes, *keys: str) -> None:
    """Rebuild each view empty (on Redis: sets its generation marker)."""
    for key in keys:
        await indexes.index(key).replace_all(nothing())


async def view_keys(client: aioredis.Redis, prefix: str, key: str) -> list[bytes]:
    return [k async for k in client.scan_iter(match=f"{prefix}rank:{{{key}}}*")]


async def test_views_are_independent(indexes: RankIndexes) -> None:
    await ready(indexes, "daily:2026-12-01:", "weekly:2026-W49:eu")
    daily, weekly = indexes.index("daily:2026-12-01:"), indexes.index("weekly:2026-W49:eu")
    await indexes.apply_views(
        [
            ("daily:2026-12-01:", [(st("u", 5), 1), (st("v", 7), 1)]),
            ("weekly:2026-W49:eu", [(st("u", 50), 1)]),
        ]
    )
    assert await daily.top(10) == rank_all([st("v", 7), st("u", 5)])
    assert await weekly.top(10) == [RankedEntry(1, "u", "name-u", 50)]
    await weekly.remove("v")  # a tombstone on one view only
    assert await indexes.apply_views([("daily:2026-12-01:", [(st("v", 8), 2)])]) == [[1]]
    assert await indexes.apply_views([("weekly:2026-W49:eu", [(st("v", 99), 2)])]) == [[None]]
    assert await weekly.count() == 1
    await weekly.apply(st("u", 1), 1)  # version 1 is held on weekly: ignored there
    assert await weekly.entry_of("u") == RankedEntry(1, "u", "name-u", 50)


async def test_index_is_made_once_per_key(indexes: RankIndexes) -> None:
    first = indexes.index("global:all:")
    assert indexes.index("global:all:") is first
    assert indexes.index("daily:2026-12-01:") is not first
    for bad in ("", "a{b", "a}b", "{global}"):
        with pytest.raises(ValueError):
            indexes.index(bad)
    with pytest.raises(ValueError):
        await indexes.apply_views([("ok:1:", [(st("u", 1), 1)]), ("bad}", [(st("u", 1), 1)])])


async def test_apply_views_equals_apply_many_per_view(indexes: RankIndexes) -> None:
    """Views a* get their batches through apply_views, their twins b* through apply_many."""
    pairs = [("a1", "b1"), ("a2", "b2"), ("a3", "b3")]
    await ready(indexes, *(k for pair in pairs for k in pair))
    for a, b in pairs:  # the same history on both twins: versions held, a removed user
        for key in (a, b):
            await indexes.index(key).apply_many([(st("old", 9, 1), 5), (st("x", 3), 1)])
            await indexes.index(key).remove("gone")
    batches: list[Batch] = [
        [(st("old", 1), 4), (st("new", 9, 0), 1), (st("x", 10), 2), (st("new", 2), 2)],
        [(st("gone", 100), 9), (st("old", 20, 2), 6), (st("old", 21, 3), 6)],
        [],
    ]
    twins = list(zip(pairs, batches, strict=True))
    got = await indexes.apply_views([(a, batch) for (a, _), batch in twins])
    want = [await indexes.index(b).apply_many(batch) for (_, b), batch in twins]
    assert got == want
    # Ranks after the whole batch: `new` is applied twice and ranked once, after both.
    assert got[0] == [2, 3, 1, 3] and got[1] == [None, 1, 1] and got[2] == []
    for a, b in pairs:
        assert await indexes.index(a).top(10) == await indexes.index(b).top(10)
    assert await indexes.apply_views([]) == []


async def test_one_view_twice_in_a_call_is_applied_in_order(indexes: RankIndexes) -> None:
    await ready(indexes, "k")
    ranks = await indexes.apply_views(
        [("k", [(st("u", 1), 1), (st("v", 2), 1)]), ("k", [(st("u", 3), 2)])]
    )
    assert ranks == [[2, 1], [1]]  # the first batch's ranks are before the second one's


async def test_drop_empties_a_view(indexes: RankIndexes) -> None:
    await ready(indexes, "old", "live")
    await indexes.apply_views([("old", [(st("u", 5), 7)]), ("live", [(st("u", 6), 7)])])
    await indexes.index("old").remove("gone")
    before = indexes.index("old")
    await indexes.drop("old")
    await indexes.drop("never-made")  # nothing to do
    assert indexes.index("old") is not before
    await ready(indexes, "old")
    assert await indexes.index("old").count() == 0
    # Versions and tombstones went with it.
    assert await indexes.apply_views([("old", [(st("u", 1), 1), (st("gone", 2), 1)])]) == [[2, 1]]
    assert await indexes.index("live").top(10) == [RankedEntry(1, "u", "name-u", 6)]


async def test_sweep_drops_what_keep_refuses(indexes: RankIndexes) -> None:
    keys = ["daily:2026-12-01:", "daily:2026-12-02:", "global:all:"]
    await ready(indexes, *keys)
    await indexes.apply_views([(key, [(st("u", 1), 1)]) for key in keys])
    dropped = await indexes.sweep(lambda key: not key.startswith("daily:2026-12-01"))
    assert dropped == ["daily:2026-12-01:"]
    await ready(indexes, "daily:2026-12-01:")
    assert await indexes.index("daily:2026-12-01:").count() == 0
    for key in keys[1:]:
        assert await indexes.index(key).count() == 1
    assert await indexes.sweep(lambda key: True) == []
    assert await indexes.sweep(lambda key: False) == sorted(keys)


# -- Redis only ------------------------------------------------------------------------------


async def test_redis_drop_unlinks_every_key_and_rebuild_leftovers(
    server: tuple[aioredis.Redis, str],
) -> None:
    redis_client, redis_prefix = server
    indexes = RedisRankIndexes(redis_client, redis_prefix)
    await ready(indexes, "old")
    await indexes.index("old").apply(st("u", 1), 1)
    await indexes.index("old").remove("gone")
    base = f"{redis_prefix}rank:{{old}}"
    tmp = f"{base}:tmp:crashed"  # a rebuild announced, staged, never swapped
    await redis_client.set(f"{base}:rebuild", tmp)
    await redis_client.sadd(f"{base}:dirty", "u")
    await redis_client.zadd(f"{tmp}:z", {"member": 0})
    await redis_client.hset(f"{tmp}:v", "u", "1")
    await redis_client.set(f"{base}:lock", "token")
    held = {k.decode()[len(base) + 1 :] for k in await view_keys(redis_client, redis_prefix, "old")}
    assert held == {*KEY_SUFFIXES, "lock", "tmp:crashed:z", "tmp:crashed:v"}
    await indexes.drop("old")
    assert await view_keys(redis_client, redis_prefix, "old") == []


async def test_redis_sweep_sees_other_processes_and_only_its_prefix(
    server: tuple[aioredis.Redis, str],
) -> None:
    redis_client, redis_prefix = server
    mine = RedisRankIndexes(redis_client, redis_prefix)
    other = RedisRankIndexes(redis_client, redis_prefix)  # another process, same prefix
    # Prefixes that a glob would confuse with each other unless escaped.
    glob_a = RedisRankIndexes(redis_client, f"{redis_prefix}?:")
    glob_b = RedisRankIndexes(redis_client, f"{redis_prefix}x:")
    for each in (other, glob_a, glob_b):
        await ready(each, "weekly:2026-W48:eu", "weekly:2026-W49:eu")
        await each.apply_views([("weekly:2026-W48:eu", [(st("u", 1), 1)])])
    # A crashed rebuild's staged keys only (no marker, no :z): still found and swept.
    await redis_client.zadd(f"{redis_prefix}rank:{{daily:2026-11-30:}}:tmp:x:z", {"m": 0})
    await ready(mine, "weekly:2026-W49:eu")
    dropped = await mine.sweep(lambda key: key == "weekly:2026-W49:eu")
    assert dropped == ["daily:2026-11-30:", "weekly:2026-W48:eu"]
    assert await view_keys(redis_client, redis_prefix, "weekly:2026-W48:eu") == []
    assert await view_keys(redis_client, redis_prefix, "daily:2026-11-30:") == []
    assert await mine.index("weekly:2026-W49:eu").count() == 0  # kept, marker intact
    for untouched in (glob_a, glob_b):
        assert await untouched.index("weekly:2026-W48:eu").count() == 1
    assert await glob_a.sweep(lambda key: False) == ["weekly:2026-W48:eu", "weekly:2026-W49:eu"]
    assert await glob_b.index("weekly:2026-W48:eu").count() == 1


def counting_client(url: str) -> tuple[aioredis.Redis, list[list[str]]]:
    """A client whose connections record each write to the socket: the names of the
    commands it carried (a pipeline's commands go in one write: one round trip)."""
    sends: list[list[str]] = []
    packed: list[str] = []

    class Counting(Connection):
        def pack_command(self, *args: Any) -> list[bytes]:
            name = args[0]
            packed.append(name.decode() if isinstance(name, bytes) else str(name))
            return super().pack_command(*args)

        async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            sends.append(packed[:])
            packed.clear()
            await super().send_packed_command(command, check_health)

    pool = ConnectionPool.from_url(url, connection_class=Counting)
    return aioredis.Redis.from_pool(pool), sends


async def test_redis_a_batch_over_four_views_is_one_round_trip(
    redis_url: str, redis_prefix: str
) -> None:
    client, sends = counting_client(redis_url)
    try:
        indexes = RedisRankIndexes(client, redis_prefix)
        keys = [f"daily:2026-12-0{d}:" for d in range(1, 5)]
        await ready(indexes, *keys)
        await indexes.apply_views([(keys[0], [(st("warm", 1), 1)])])  # connected, script loaded
        sends.clear()
        batch = [(key, [(st("u", i + 1), 1), (st("v", 10), 1)]) for i, key in enumerate(keys)]
        ranks = await indexes.apply_views(batch)
        assert sends == [["EVALSHA"] * 4]
        assert ranks == [[2, 1]] * 4  # on view 1, `warm` (1) ranks after `u` (1): id bytes
        assert await indexes.apply_views([(key, []) for key in keys]) == [[]] * 4
        assert sends == [["EVALSHA"] * 4]  # empty batches send nothing
    finally:
        await client.aclose()


async def test_cluster_a_batch_over_views_is_one_round_trip_per_node(
    cluster_url: str, cluster_prefix: str
) -> None:
    """Twelve views spread over the three masters: one batch is one pipeline per node that
    holds any of them (its views' EVALSHAs together), sent concurrently."""
    from redis.asyncio.cluster import RedisCluster

    from scoreboard.realtime.redis_cluster import cluster_client

    sends: list[tuple[int, list[str]]] = []
    packed: list[str] = []

    class Counting(Connection):
        def pack_commands(self, commands: Any) -> list[bytes]:
            commands = list(commands)
            packed.extend(str(c[0]) for c in commands)
            return super().pack_commands(commands)

        async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            sends.append((int(self.port), packed[:]))
            packed.clear()
            await super().send_packed_command(command, check_health)

    client: RedisCluster = cluster_client(cluster_url, 5.0)
    client.nodes_manager.connection_kwargs["connection_class"] = Counting
    try:
        await client.initialize()
        indexes = RedisRankIndexes(client, cluster_prefix)
        keys = [f"daily:2026-12-{d:02d}:" for d in range(1, 13)]
        await ready(indexes, *keys)
        nodes = {client.get_node_from_key(f"{cluster_prefix}rank:{{{key}}}:z") for key in keys}
        assert len(nodes) == 3  # the views are spread over every master
        await indexes.apply_views([(key, [(st("warm", 1), 1)]) for key in keys])  # scripts held
        sends.clear()
        batch = [(key, [(st("u", i + 1), 1), (st("v", 100), 1)]) for i, key in enumerate(keys)]
        ranks = await indexes.apply_views(batch)
        per_node: dict[int, int] = {}
        for port, commands in sends:
            assert commands and set(commands) == {"EVALSHA"}
            per_node[port] = per_node.get(port, 0) + 1
        assert per_node == {int(node.port): 1 for node in nodes if node is not None}
        assert sum(len(commands) for _, commands in sends) == len(keys)
        assert ranks == [[2, 1]] * len(keys)
    finally:
        await client.aclose()


async def test_redis_pipelined_loads_a_script_redis_lacks(
    server: tuple[aioredis.Redis, str],
) -> None:
    redis_client, redis_prefix = server
    from scoreboard.realtime.redis_index import ScriptCall

    known = redis_client.register_script("return ARGV[1]")
    await known(args=["warm"])
    unknown = redis_client.register_script(f"return ARGV[1] .. '-{uuid.uuid4().hex}'")
    calls = [
        ScriptCall(known, [], ["a"]),
        ScriptCall(unknown, [f"{redis_prefix}k"], ["b"]),
        ScriptCall(known, [], ["c"]),
        ScriptCall(unknown, [f"{redis_prefix}k"], ["d"]),
    ]
    replies = await pipelined(redis_client, calls)
    assert [r.decode() for r in replies[::2]] == ["a", "c"]
    assert [r.decode().split("-")[0] for r in replies[1::2]] == ["b", "d"]
    failing = redis_client.register_script("return redis.error_reply('BOOM refused')")
    await redis_client.script_load(failing.script)
    with pytest.raises(ResponseError, match="BOOM"):
        await pipelined(redis_client, [ScriptCall(known, [], ["e"]), ScriptCall(failing, [], [])])


# -- randomized: apply_views against a per-view fold under the ranking rules -----------------

KEYS = ["global:all:", "daily:2026-12-01:", "weekly:2026-W49:eu"]
UPDATES = hs.tuples(
    hs.builds(
        st,
        user_id=hs.sampled_from(["a", "B", "é", "ab"]),
        score=hs.integers(-2, 2),
        reached_at_us=hs.integers(0, 2),
    ),
    hs.integers(0, 3),
)
CALLS = hs.lists(
    hs.one_of(
        hs.lists(hs.tuples(hs.sampled_from(KEYS), hs.lists(UPDATES, max_size=5)), max_size=4),
        hs.tuples(hs.sampled_from(KEYS), hs.sampled_from(["a", "B"])),  # a removal
    ),
    max_size=6,
)


class Reference:
    """`RankIndex` semantics per view, by hand: versions, tombstones, `rank_all`."""

    def __init__(self) -> None:
        self.held: dict[str, dict[str, tuple[Standing, int]]] = {k: {} for k in KEYS}
        self.removed: dict[str, set[str]] = {k: set() for k in KEYS}

    def apply_many(self, key: str, batch: Sequence[tuple[Standing, int]]) -> list[int | None]:
        held = self.held[key]
        for standing, version in batch:
            if standing.user_id in self.removed[key]:
                continue
            old = held.get(standing.user_id)
            if old is None or not (version and old[1] >= version):
                held[standing.user_id] = (standing, version)
        ranks = {e.user_id: e.rank for e in self.top(key)}
        return [ranks.get(standing.user_id) for standing, _ in batch]

    def remove(self, key: str, user_id: str) -> None:
        self.removed[key].add(user_id)
        self.held[key].pop(user_id, None)

    def top(self, key: str) -> list[RankedEntry]:
        return rank_all([standing for standing, _ in self.held[key].values()])


async def replay(indexes: RankIndexes, calls: list[Any]) -> None:
    await ready(indexes, *KEYS)
    reference = Reference()
    for call in calls:
        if isinstance(call, tuple):
            await indexes.index(call[0]).remove(call[1])
            reference.remove(*call)
            continue
        expected = [reference.apply_many(key, batch) for key, batch in call]
        assert await indexes.apply_views(call) == expected
    for key in KEYS:
        assert await indexes.index(key).top(10) == reference.top(key)


async def replay_on(kind: str, redis_url: str | None, calls: list[Any]) -> None:
    from scoreboard.backends import redis_client

    if kind == "memory":
        await replay(MemoryRankIndexes(), calls)
        return
    assert redis_url is not None
    client = redis_client(redis_url, 5.0)  # a `RedisCluster` for a `redis+cluster://` URL
    prefix = f"sbtest:{uuid.uuid4().hex[:10]}:"
    try:
        await replay(RedisRankIndexes(client, prefix), calls)
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.mark.parametrize("kind", ["memory", "redis", "cluster"])
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(calls=CALLS)
def test_apply_views_matches_a_fold_per_view(
    kind: str, request: pytest.FixtureRequest, calls: list[Any]
) -> None:
    redis_url = request.getfixturevalue(f"{kind}_url") if kind != "memory" else None
    asyncio.run(replay_on(kind, redis_url, calls))
