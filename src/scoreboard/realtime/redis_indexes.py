"""`RankIndexes` on Redis: one `SharedRedisIndex` per view, a batch over many views in one
round trip.

Each view is a board of its own in the sense of `realtime.redis_index` (keys
`<prefix>rank:{<view key>}:...`, so the view key is their hash tag), with its own generation
marker, rebuild lock and rebuild (`realtime.redis_shared`), exactly like `global` alone.

`apply_views` sends every view's `APPLY_MANY` script call in ONE non-transactional pipeline of
`EVALSHA`s: one round trip, each call atomic, touching only its view's keys, so that on a
Redis Cluster the client's `ClusterPipeline` splits it per node (one pipeline per node, sent
concurrently: one round trip per node) without changing the calls. redis-py's `Script`
objects are not used on the pipeline: they would ask `SCRIPT EXISTS` first, a second round trip
on every batch. When Redis does not hold the script (first use, a restart, `SCRIPT FLUSH`), its
calls come back `NOSCRIPT` without having run: the script is loaded and they are sent again.

`sweep` finds views by `SCAN` over `<prefix>rank:{*}:*` (COUNT `SCAN_COUNT` per step), so it
sees views made by any process, and frees their keys with `UNLINK` (memory reclaimed in the
background), `UNLINK_BATCH` names per call. The client belongs to the caller.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from scoreboard.aio import resume_cancel
from scoreboard.domain.ranking import Standing
from scoreboard.realtime.base import check_view_key
from scoreboard.realtime.redis_cluster import mark_stale
from scoreboard.realtime.redis_index import ranks_of
from scoreboard.realtime.redis_shared import SharedRedisIndex

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from scoreboard.realtime.redis_index import ScriptCall

SCAN_COUNT = 1000  # keys Redis looks at per SCAN step of a sweep
UNLINK_BATCH = 500  # key names per UNLINK of a sweep


class RedisRankIndexes:
    """`RankIndexes` on Redis (see the module doc): `index(key)` is a `SharedRedisIndex`."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self._views: dict[str, SharedRedisIndex] = {}
        self._head = f"{prefix}rank:{{"  # every view's keys start with it, then `key}:`

    def index(self, key: str) -> SharedRedisIndex:
        view = self._views.get(key)
        if view is None:
            view = SharedRedisIndex(self._client, self._prefix, board=check_view_key(key))
            self._views[key] = view
        return view

    async def apply_views(
        self, updates: Sequence[tuple[str, Sequence[tuple[Standing, int]]]]
    ) -> list[list[int | None]]:
        """Every view's `apply_many` in one pipeline (module doc); `[]` for an empty batch."""
        out: list[list[int | None]] = [[] for _ in updates]
        calls: list[ScriptCall] = []
        slots: list[int] = []
        for slot, (key, batch) in enumerate(updates):
            if batch:
                calls.append(self.index(key).apply_many_call(batch))
                slots.append(slot)
        if calls:
            replies = await pipelined(self._client, calls)
            for slot, reply in zip(slots, replies, strict=True):
                out[slot] = ranks_of(reply)
        return out

    async def drop(self, key: str) -> None:
        """UNLINK the view's keys (`SharedRedisIndex.delete`) and forget its object."""
        view = self._views.pop(key, None) or SharedRedisIndex(
            self._client, self._prefix, board=check_view_key(key)
        )
        await view.delete()

    async def sweep(self, keep: Callable[[str], bool]) -> list[str]:
        """Drop every view found in Redis (any process's) or made here that `keep` refuses:
        every key found under its hash tag is unlinked (staged leftovers included)."""
        found: dict[str, list[Any]] = {key: [] for key in self._views}
        pattern = _glob_escape(self._head) + "*}:*"
        async for name in self._client.scan_iter(match=pattern, count=SCAN_COUNT):
            key = self._view_of(name)
            if key is not None:
                found.setdefault(key, []).append(name)
        resume_cancel()
        dropped = sorted(key for key in found if not keep(key))
        names: list[Any] = []
        for key in dropped:
            names += found[key]
            self._views.pop(key, None)
        for start in range(0, len(names), UNLINK_BATCH):
            await self._client.unlink(*names[start : start + UNLINK_BATCH])
            resume_cancel()
        return dropped

    def _view_of(self, name: bytes | str) -> str | None:
        """The view key of a key name under `<prefix>rank:{`, or None."""
        text = name.decode(errors="replace") if isinstance(name, bytes) else name
        if not text.startswith(self._head):
            return None
        key, brace, _ = text[len(self._head) :].partition("}")
        return key if brace and key else None

    async def close(self) -> None:
        """Forget every view; the client is the caller's."""
        views, self._views = self._views, {}
        for view in views.values():
            await view.close()


async def pipelined(client: aioredis.Redis, calls: Sequence[ScriptCall]) -> list[Any]:
    """The replies of `calls`, sent as `EVALSHA`s in one non-transactional pipeline (one
    round trip). Calls refused with NOSCRIPT did not run: their scripts are loaded and they
    are sent again, in order (two more round trips, rare). Any other error is raised after
    the round trip: calls before and after it may have run."""
    from redis.exceptions import NoScriptError

    replies = await _send(client, calls)
    missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missing:
        for script in {calls[i].script.sha: calls[i].script for i in missing}.values():
            await client.script_load(script.script)
        again = await _send(client, [calls[i] for i in missing])
        for i, reply in zip(missing, again, strict=True):
            replies[i] = reply
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


async def _send(client: aioredis.Redis, calls: Sequence[ScriptCall]) -> list[Any]:
    """One pipeline; on a Redis Cluster one per node, sent concurrently (one round trip per
    node). A lost node marks the cluster client's slot map stale (`mark_stale`)."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    try:
        async with client.pipeline(transaction=False) as pipe:
            for call in calls:
                # Not `pipe.evalsha`, which a cluster pipeline refuses; it routes this one
                # by its keys.
                pipe.execute_command(
                    "EVALSHA", call.script.sha, len(call.keys), *call.keys, *call.args
                )
            replies: list[Any] = await pipe.execute(raise_on_error=False)
    except (RedisConnectionError, RedisTimeoutError, OSError):
        mark_stale(client)
        raise
    resume_cancel()
    for reply in replies:
        if isinstance(reply, (RedisConnectionError, RedisTimeoutError)):
            mark_stale(client)
    return replies


def _glob_escape(text: str) -> str:
    """`text` matched literally by a Redis glob (`SCAN MATCH`)."""
    return re.sub(r"([\\*?\[\]])", r"\\\1", text)
