"""Capacity, part 3: Redis's cost per event, with the service's own rank-index batch apply.

A throwaway redis-server (`meters.ThrowawayRedis`: nobody else's commands in its figures)
holds the four default boards' current views (`global`, `daily`, `weekly`, `monthly`), each
filled with `members` users through `RedisRankIndexes.apply_views`, the call a group commit
makes after its commit. Memory per user per board is `used_memory` growth over those
4 x `members` entries. Then for each batch size B, `reps` batches of B distinct users (each
event on all four views, as on the service): Redis CPU per event (`INFO` `used_cpu_user` +
`used_cpu_sys`), the commands Redis ran per batch (`INFO commandstats`: the `EVALSHA`s sent
and the commands the scripts ran), and the round trips per batch (writes to the socket,
counted by the client's connection class).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from scoreboard.domain.boards import BoardCatalogue
from scoreboard.domain.ranking import Standing
from scoreboard.realtime.redis_index import RedisRankIndex
from scoreboard.realtime.redis_indexes import RedisRankIndexes

from .meters import RedisReading, ThrowawayRedis, calls_between
from .populate import BASE_US, score_of, user_id
from .procs import Procs

PREFIX = "cap:"
LOAD_CHUNK = 1000


class CountingConnection(aioredis.Connection):
    """A real connection that counts the writes it makes to its socket: one per command,
    one per pipeline (redis-py packs a pipeline into one write), i.e. one per round trip."""

    sends = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sends += 1
        await super().send_packed_command(command, check_health)


@dataclass(frozen=True, slots=True)
class RedisFigures:
    size: int
    batches: int
    cpu_per_event: float  # Redis's seconds, for one event on four views
    client_cpu_per_event: float
    round_trips_per_batch: float
    sent_per_batch: float  # EVALSHAs the client sent
    commands_per_batch: float  # every command Redis ran, scripts' inner ones included


@dataclass(frozen=True, slots=True)
class RedisMemory:
    members: int  # per view
    views: int
    bytes_per_user_per_board: float
    used_memory: int  # after the fill
    top10_cpu: float = float("nan")  # Redis seconds per top-10 read of one view (a hub pass)


def standing(n: int, bump: int = 0) -> Standing:
    return Standing(user_id(n), f"Bench {n}", score_of(n) + bump, BASE_US + n + bump)


def view_keys(now_us: int) -> list[str]:
    """The current view of each default board (none of them partitioned)."""
    keys = []
    for board in BoardCatalogue.default():
        view = board.view_at(now_us, None)
        assert view is not None
        keys.append(view.key)
    return keys


async def fill(indexes: RedisRankIndexes, keys: list[str], members: int) -> None:
    for start in range(0, members, LOAD_CHUNK):
        chunk = [(standing(n), 1) for n in range(start, min(members, start + LOAD_CHUNK))]
        await indexes.apply_views([(key, chunk) for key in keys])


async def series(
    indexes: RedisRankIndexes, redis: ThrowawayRedis, keys: list[str], size: int, reps: int,
    members: int,
) -> RedisFigures:  # fmt: skip
    """`reps` batches of `size` distinct users, each on every view; Redis's figures."""
    before: RedisReading = redis.reading()
    sends, cpu = CountingConnection.sends, time.process_time()
    for rep in range(reps):
        first = (rep * size * 7919) % members  # batches spread over the board
        batch = [(standing((first + k) % members, 10 * (rep + 1)), rep + 2) for k in range(size)]
        replies = await indexes.apply_views([(key, batch) for key in keys])
        if any(len(r) != size for r in replies):
            raise RuntimeError("apply_views answered a rank list of the wrong length")
    client = time.process_time() - cpu
    trips = CountingConnection.sends - sends
    after = redis.reading()
    calls = calls_between(before, after)
    events = size * reps
    return RedisFigures(
        size,
        reps,
        (after.cpu - before.cpu) / events,
        client / events,
        trips / reps,
        calls.get("evalsha", 0) / reps,
        sum(calls.values()) / reps,
    )


async def measure(
    redis: ThrowawayRedis, sizes: tuple[int, ...], members: int, events: int, least: int
) -> tuple[RedisMemory, list[RedisFigures]]:
    pool = aioredis.BlockingConnectionPool.from_url(
        redis.url, connection_class=CountingConnection, max_connections=4, timeout=60,
        socket_timeout=60,
    )  # fmt: skip
    client = aioredis.Redis.from_pool(pool)
    indexes = RedisRankIndexes(client, PREFIX)
    try:
        keys = view_keys(int(time.time() * 1_000_000))
        for key in keys:  # as after a rebuild: the generation marker is there
            await RedisRankIndex(client, PREFIX, key, checked=True).set_marker("capacity")
        empty = redis.reading()
        await fill(indexes, keys, members)
        filled = redis.reading()
        memory = RedisMemory(
            members, len(keys), (filled.memory - empty.memory) / (members * len(keys)),
            filled.memory,
        )  # fmt: skip
        await series(indexes, redis, keys, 10, 5, members)  # warm: scripts loaded, pool open
        out = []
        for size in sizes:
            reps = max(least, -(-events // size))
            out.append(await series(indexes, redis, keys, size, reps, members))
        top = await top_reads(RedisRankIndex(client, PREFIX, keys[0], checked=True), redis, events)
        return dataclasses.replace(memory, top10_cpu=top), out
    finally:
        await indexes.close()
        await client.aclose()


async def top_reads(index: RedisRankIndex, redis: ThrowawayRedis, reads: int) -> float:
    """Redis CPU per top-10 read of a full view (the read each process's hub makes once per
    fan-out pass of a view it has clients of; the script checks the generation marker)."""
    for _ in range(10):
        await index.top(10)
    before = redis.reading()
    for _ in range(reads):
        if len(await index.top(10)) != 10:
            raise RuntimeError("a top-10 read of a full view answered fewer entries")
    return (redis.reading().cpu - before.cpu) / reads


def run(
    workdir: Path, sizes: tuple[int, ...], members: int, events: int, least: int
) -> tuple[RedisMemory, list[RedisFigures]]:
    with Procs(workdir) as procs:
        redis = ThrowawayRedis(procs, workdir / "redis")
        return asyncio.run(measure(redis, sizes, members, events, least))
