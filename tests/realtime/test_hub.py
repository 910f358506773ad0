"""The hub against a real in-memory index: coalescing, no-change silence, slow clients."""

from __future__ import annotations

import asyncio

import orjson

from scoreboard.domain.ranking import RankedEntry, Standing
from scoreboard.realtime.dialects import CanonicalDialect
from scoreboard.realtime.hub import Close, Hub, Subscriber
from scoreboard.realtime.memory import MemoryRankIndex


async def make_hub(queue_size: int = 8) -> tuple[Hub, MemoryRankIndex]:
    index = MemoryRankIndex()

    async def top(scope: str, limit: int) -> list[RankedEntry]:
        return await index.top(limit)

    hub = Hub(top, tick_seconds=0.01, queue_size=queue_size)
    hub.start()
    return hub, index


def drain(sub: Subscriber) -> list[dict[str, object]]:
    out = []
    while not sub.queue.empty():
        item = sub.queue.get_nowait()
        out.append({"close": item.code} if isinstance(item, Close) else orjson.loads(item))
    return out


async def test_snapshot_then_update_only_when_visible_top_changes() -> None:
    hub, index = await make_hub()
    try:
        await index.apply(Standing("a", "A", 10, 1), 1)
        sub = await hub.attach("global", 1, CanonicalDialect())
        [snapshot] = drain(sub)
        assert snapshot["type"] == "snapshot" and snapshot["limit"] == 1
        assert snapshot["items"] == [{"rank": 1, "user_id": "a", "display_name": "A", "score": 10}]

        await index.apply(Standing("b", "B", 5, 2), 1)  # below the visible top-1
        hub.mark_dirty("global")
        await asyncio.sleep(0.05)
        assert drain(sub) == []

        await index.apply(Standing("b", "B", 50, 3), 2)
        hub.mark_dirty("global")
        await asyncio.sleep(0.05)
        [update] = drain(sub)
        assert update["type"] == "update"
        assert update["items"] == [{"rank": 1, "user_id": "b", "display_name": "B", "score": 50}]
    finally:
        await hub.close()


async def test_burst_is_coalesced_and_ends_on_current_state() -> None:
    hub, index = await make_hub(queue_size=64)
    try:
        sub = await hub.attach("global", 10, CanonicalDialect())
        drain(sub)
        for version in range(1, 200):
            await index.apply(Standing("a", "A", version, version), version)
            hub.mark_dirty("global")
        await asyncio.sleep(0.1)
        messages = drain(sub)
        assert 1 <= len(messages) < 10
        assert messages[-1]["items"] == [
            {"rank": 1, "user_id": "a", "display_name": "A", "score": 199}
        ]
    finally:
        await hub.close()


async def test_slow_client_is_dropped_and_others_still_served() -> None:
    hub, index = await make_hub(queue_size=3)
    try:
        slow = await hub.attach("global", 10, CanonicalDialect())
        fast = await hub.attach("global", 10, CanonicalDialect())
        for version in range(1, 6):
            drain(fast)
            await index.apply(Standing("a", "A", version, version), version)
            await hub.fan_out("global")
        assert slow.dropped
        assert drain(slow) == [{"close": 1013}]
        assert hub.connections == 1
        assert drain(fast)[-1]["items"][0]["score"] == 5
    finally:
        await hub.close()


async def test_resync_sends_fresh_snapshot() -> None:
    hub, index = await make_hub()
    try:
        sub = await hub.attach("global", 10, CanonicalDialect())
        drain(sub)
        await index.apply(Standing("a", "A", 1, 1), 1)
        await hub.on_resync()
        [snapshot] = drain(sub)
        assert snapshot["type"] == "snapshot" and snapshot["items"][0]["user_id"] == "a"
    finally:
        await hub.close()
