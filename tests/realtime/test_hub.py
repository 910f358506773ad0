"""The hub against a real in-memory index: leading and trailing edges, no-change silence, exact
diffs under latest-wins, slow clients evicted and abandoned, hub-wide pings.

The wire is a recorder whose `gate` plays the socket: open, it drains; closed, sends wait as a
socket that does not drain makes them wait (the end-to-end tests use real sockets)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from scoreboard.domain.ranking import RankedEntry, Standing
from scoreboard.realtime.dialects import CanonicalDialect, Dialect
from scoreboard.realtime.dialects_compat import Seed003Dialect
from scoreboard.realtime.frames import TextFrame
from scoreboard.realtime.hub import Hub
from scoreboard.realtime.memory import MemoryRankIndex
from scoreboard.realtime.subscriber import Subscriber


class Recorder:
    def __init__(self, draining: bool = True) -> None:
        self.frames: list[dict[str, Any]] = []
        self.closed: int | None = None
        self.gate = asyncio.Event()
        if draining:
            self.gate.set()

    def write(self, frame: TextFrame) -> bool:
        if not self.gate.is_set():
            return False
        self.frames.append(orjson.loads(frame.text))
        return True

    async def send(self, frame: TextFrame) -> None:
        await self.gate.wait()
        self.frames.append(orjson.loads(frame.text))

    async def close(self, code: int, reason: str) -> None:
        await self.gate.wait()
        self.closed = code

    def take(self) -> list[dict[str, Any]]:
        frames, self.frames = self.frames, []
        return frames


@contextlib.asynccontextmanager
async def running(**options: Any) -> AsyncIterator[tuple[Hub, MemoryRankIndex]]:
    index = MemoryRankIndex()

    async def top(scope: str, limit: int) -> list[RankedEntry]:
        return await index.top(limit)

    hub = Hub(top, **{"tick_seconds": 0.01, **options})
    hub.start()
    try:
        yield hub, index
    finally:
        await hub.close()


class Client:
    """A subscription held by its own task, as the WebSocket endpoint holds one."""

    def __init__(self, hub: Hub, limit: int, dialect: Dialect, wire: Recorder) -> None:
        self.wire = wire
        self.ready = asyncio.Event()
        self.sub: Subscriber | None = None
        self.task = asyncio.create_task(self._hold(hub, limit, dialect))

    async def _hold(self, hub: Hub, limit: int, dialect: Dialect) -> None:
        async with hub.subscription("global", limit, dialect, self.wire) as sub:
            self.sub = sub
            self.ready.set()
            await asyncio.get_running_loop().create_future()

    @classmethod
    async def open(
        cls, hub: Hub, limit: int = 10, dialect: Dialect | None = None, draining: bool = True
    ) -> Client:
        client = cls(hub, limit, dialect or CanonicalDialect(), Recorder(draining))
        await asyncio.wait_for(client.ready.wait(), 5)
        return client


async def until(predicate: Callable[[], object], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def score(index: MemoryRankIndex, user: str, points: int, version: int) -> None:
    await index.apply(Standing(user, user.upper(), points, version), version)


async def test_snapshot_then_update_only_when_visible_top_changes() -> None:
    async with running() as (hub, index):
        await score(index, "a", 10, 1)
        client = await Client.open(hub, limit=1)
        await until(lambda: client.wire.frames)
        [snapshot] = client.wire.take()
        assert snapshot["type"] == "snapshot" and snapshot["limit"] == 1
        assert snapshot["items"] == [{"rank": 1, "user_id": "a", "display_name": "A", "score": 10}]

        await score(index, "b", 5, 2)  # below the visible top-1
        await hub.fan_out("global")
        await asyncio.sleep(0.05)
        assert client.wire.take() == []

        await score(index, "b", 50, 3)
        hub.mark_dirty("global")
        await until(lambda: client.wire.frames)
        [update] = client.wire.take()
        assert update["type"] == "update"
        assert update["items"] == [{"rank": 1, "user_id": "b", "display_name": "B", "score": 50}]


async def test_a_lone_change_fans_out_at_once_not_after_the_tick() -> None:
    async with running(tick_seconds=60) as (hub, index):
        client = await Client.open(hub)
        await until(lambda: client.wire.frames)
        client.wire.take()
        await score(index, "a", 1, 1)
        hub.mark_dirty("global")
        await until(lambda: client.wire.frames, within=10)  # the tick is 60 s
        assert client.wire.take()[-1]["items"][0]["score"] == 1


async def test_burst_is_coalesced_and_ends_on_current_state() -> None:
    async with running(tick_seconds=0.05) as (hub, index):
        client = await Client.open(hub)
        await until(lambda: client.wire.frames)
        client.wire.take()
        for version in range(1, 200):
            await score(index, "a", version, version)
            hub.mark_dirty("global")
        await until(
            lambda: client.wire.frames and client.wire.frames[-1]["items"][0]["score"] == 199
        )
        assert len(client.wire.take()) < 10


async def test_diff_dialect_stays_exact_when_changes_replace_each_other() -> None:
    """A client that lags gets one diff from what it was sent to the current state."""
    async with running() as (hub, index):
        client = await Client.open(hub, limit=3, dialect=Seed003Dialect(), draining=False)
        for version, (user, points) in enumerate([("a", 5), ("b", 7), ("c", 1), ("a", 9)], 1):
            await score(index, user, points, version)
            await hub.fan_out("global")
        await score(index, "d", 8, 5)
        await hub.fan_out("global")
        client.wire.gate.set()
        board: dict[str, dict[str, Any]] = {}
        await until(lambda: client.wire.frames)
        await asyncio.sleep(0.1)
        for frame in client.wire.take():
            if frame["type"] == "snapshot":
                board = {entry["userId"]: entry for entry in frame["top"]}
            elif frame["type"] == "remove":
                board.pop(frame["userId"])
            else:
                board[frame["userId"]] = {k: v for k, v in frame.items() if k != "type"}
        expected = [(e.user_id, e.score, e.rank) for e in await index.top(3)]
        got = sorted(((u, e["score"], e["rank"]) for u, e in board.items()), key=lambda t: t[2])
        assert got == expected == [("a", 9, 1), ("d", 8, 2), ("b", 7, 3)]


async def test_stalled_client_is_evicted_1013_counted_and_others_served() -> None:
    drops: list[int] = []
    async with running(send_timeout_seconds=0.2, on_drop=lambda: drops.append(1)) as (hub, index):
        slow = await Client.open(hub, draining=False)
        fast = await Client.open(hub)
        for version in range(1, 6):
            await score(index, "a", version, version)
            await hub.fan_out("global")
        assert slow.sub is not None
        await until(lambda: slow.sub is not None and slow.sub.evicted)
        assert drops == [1] and hub.connections == 1
        await until(lambda: fast.wire.frames and fast.wire.frames[-1]["items"][0]["score"] == 5)

        slow.wire.gate.set()  # the client reads again: what was stuck, then the close
        await until(lambda: slow.wire.closed is not None)
        assert slow.wire.closed == 1013
        assert [f["type"] for f in slow.wire.frames] == ["snapshot"]
        assert drops == [1]


async def test_client_that_takes_not_even_the_close_is_abandoned() -> None:
    async with running(send_timeout_seconds=0.1, close_grace_seconds=0.2) as (hub, _):
        slow = await Client.open(hub, draining=False)
        await until(lambda: slow.task.done())
        assert slow.sub is not None and slow.sub.abandoned
        assert slow.wire.closed is None and hub.connections == 0


async def test_pings_are_one_hub_wide_round() -> None:
    async with running(ping_seconds=0.05) as (hub, _):
        clients = [await Client.open(hub) for _ in range(3)]

        def pings(client: Client) -> set[str]:
            return {f["timestamp"] for f in client.wire.frames if f["type"] == "ping"}

        await until(lambda: all(len(pings(c)) >= 2 for c in clients))
        assert set.intersection(*map(pings, clients))  # one round reached every client


async def test_resync_sends_fresh_snapshot() -> None:
    async with running() as (hub, index):
        client = await Client.open(hub)
        await until(lambda: client.wire.frames)
        client.wire.take()
        await score(index, "a", 1, 1)
        await hub.on_resync()
        await until(lambda: client.wire.frames)
        [snapshot] = client.wire.take()
        assert snapshot["type"] == "snapshot" and snapshot["items"][0]["user_id"] == "a"
