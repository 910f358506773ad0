"""In-process realtime backends. They serve ONE process: with several processes, each would
hold its own ranking and its own subscribers, so scaled deployments use `realtime.redis`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
from collections.abc import AsyncIterator, Callable, Iterator, Sequence

from sortedcontainers import SortedDict

from scoreboard.domain.ranking import RankedEntry, Standing, sort_key
from scoreboard.realtime.base import MessageHandler, ResyncHandler, check_view_key

Key = tuple[int, int, bytes]


class _Board:
    """One immutable-by-convention generation of the ranking (swapped whole on rebuild)."""

    def __init__(self) -> None:
        self.ordered: SortedDict = SortedDict()  # sort key -> Standing
        self.keys: dict[str, Key] = {}
        self.versions: dict[str, int] = {}

    def put(self, standing: Standing, version: int) -> None:
        old = self.keys.get(standing.user_id)
        if old is not None:
            del self.ordered[old]
        key = standing.sort_key()
        self.ordered[key] = standing
        self.keys[standing.user_id] = key
        self.versions[standing.user_id] = version

    def drop(self, user_id: str) -> None:
        key = self.keys.pop(user_id, None)
        if key is not None:
            del self.ordered[key]
        self.versions.pop(user_id, None)

    @classmethod
    def bulk(cls, keys: list[Key], standings: list[Standing]) -> _Board:
        """A board of `standings` (each user once) with their sort `keys`, unversioned.

        Built in one go: sorting keys that arrive in rank order is linear (timsort finds the
        run), where inserting them one by one costs a bisection and a list insert each; for
        1M users that is well under a second against several. A user listed twice keeps
        their last standing, as `put` would.
        """
        board = cls()
        board.keys = {standing.user_id: key for key, standing in zip(keys, standings, strict=True)}
        if len(board.keys) < len(keys):  # not the store's walk: fall back to one by one
            board.keys = {}
            for standing in standings:
                board.put(standing, 0)
            return board
        board.ordered = SortedDict(zip(keys, standings, strict=True))
        return board


class MemoryRankIndex:
    """`RankIndex` on a sorted dict: O(log n) updates and rank lookups, O(log n + k) pages."""

    def __init__(self) -> None:
        self._board = _Board()
        self._removed: set[str] = set()

    async def replace_all(self, pages: AsyncIterator[list[Standing]]) -> int:
        """Collect the pages (sort keys computed page by page, between awaits), then build
        the new board in bulk and swap it in: readers see the old board until then. Users
        absent from the versions map hold version 0 (`apply` treats both alike)."""
        keys: list[Key] = []
        standings: list[Standing] = []
        with _collector_paused():
            async for page in pages:
                keys += [sort_key(s.score, s.reached_at_us, s.user_id) for s in page]
                standings += page
            board = _Board.bulk(keys, standings)
        # Keep the newest versions we already saw: a rebuild never goes backwards.
        for user_id, version in self._board.versions.items():
            if user_id in board.keys:
                board.versions[user_id] = version
        self._board = board
        return len(board.keys)

    async def apply(self, standing: Standing, version: int) -> int | None:
        if not self._put(standing, version):
            return None
        return int(self._board.ordered.index(self._board.keys[standing.user_id])) + 1

    async def apply_many(self, updates: Sequence[tuple[Standing, int]]) -> list[int | None]:
        for standing, version in updates:
            self._put(standing, version)
        ordered, keys = self._board.ordered, self._board.keys
        ranks: dict[str, int | None] = {}
        for standing, _ in updates:
            user_id = standing.user_id
            if user_id not in ranks:
                key = keys.get(user_id)
                ranks[user_id] = None if key is None else int(ordered.index(key)) + 1
        return [ranks[standing.user_id] for standing, _ in updates]

    def _put(self, standing: Standing, version: int) -> bool:
        """Apply one update (unless stale); False when the user was removed."""
        if standing.user_id in self._removed:
            return False
        held = self._board.versions.get(standing.user_id)
        if not (held is not None and version and held >= version):
            self._board.put(standing, version)
        return True

    async def rename(self, user_id: str, display_name: str) -> None:
        key = self._board.keys.get(user_id)
        if key is not None:
            standing = self._board.ordered[key]
            self._board.ordered[key] = dataclasses.replace(standing, display_name=display_name)

    async def remove(self, user_id: str) -> None:
        self._removed.add(user_id)
        self._board.drop(user_id)

    async def restore(self, user_id: str) -> None:
        self._removed.discard(user_id)

    async def top(self, limit: int, offset: int = 0) -> list[RankedEntry]:
        values = self._board.ordered.values()
        return [_ranked(offset + i + 1, s) for i, s in enumerate(values[offset : offset + limit])]

    async def count(self) -> int:
        return len(self._board.keys)

    async def page(self, limit: int, offset: int = 0) -> tuple[list[RankedEntry], int]:
        return await self.top(limit, offset), len(self._board.keys)

    async def entry_of(self, user_id: str) -> RankedEntry | None:
        key = self._board.keys.get(user_id)
        if key is None:
            return None
        return _ranked(self._board.ordered.index(key) + 1, self._board.ordered[key])

    async def around(self, user_id: str, neighbours: int) -> list[RankedEntry]:
        key = self._board.keys.get(user_id)
        if key is None:
            return []
        position = self._board.ordered.index(key)
        start = max(0, position - neighbours)
        return await self.top(position + neighbours + 1 - start, start)

    async def close(self) -> None:
        return None


class MemoryRankIndexes:
    """`RankIndexes` of one process: a `MemoryRankIndex` per view key. `apply_views` is each
    view's `apply_many` in turn (no await between views); `drop` frees the view's index."""

    def __init__(self) -> None:
        self._views: dict[str, MemoryRankIndex] = {}

    def index(self, key: str) -> MemoryRankIndex:
        view = self._views.get(key)
        if view is None:
            view = self._views[check_view_key(key)] = MemoryRankIndex()
        return view

    async def apply_views(
        self, updates: Sequence[tuple[str, Sequence[tuple[Standing, int]]]]
    ) -> list[list[int | None]]:
        indexes = [self.index(key) for key, _ in updates]  # refuse a bad key before any write
        batches = [batch for _, batch in updates]
        return [await i.apply_many(batch) for i, batch in zip(indexes, batches, strict=True)]

    async def drop(self, key: str) -> None:
        self._views.pop(key, None)

    async def sweep(self, keep: Callable[[str], bool]) -> list[str]:
        dropped = sorted(key for key in self._views if not keep(key))
        for key in dropped:
            del self._views[key]
        return dropped

    async def close(self) -> None:
        views, self._views = self._views, {}
        for view in views.values():
            await view.close()


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a board is built: every object the build
    keeps makes the collector rescan all the others, a quarter of a 1M-user rebuild's CPU.
    Nothing the build allocates forms cycles (reference counting frees it); other tasks'
    cyclic garbage waits the few seconds until the collector runs again."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _ranked(rank: int, standing: Standing) -> RankedEntry:
    return RankedEntry(rank, standing.user_id, standing.display_name, standing.score)


class MemoryBroker:
    """`Broker` for one process: publish calls the local handler directly. Never loses a
    message, so it never needs a resync."""

    def __init__(self) -> None:
        self._handler: MessageHandler | None = None

    async def start(self, on_message: MessageHandler, on_resync: ResyncHandler) -> None:
        self._handler = on_message

    async def publish(self, message: bytes) -> bool:
        if self._handler is not None:
            await self._handler(message)
        return True

    async def close(self) -> None:
        self._handler = None


__all__ = ["MemoryBroker", "MemoryRankIndex", "MemoryRankIndexes", "sort_key"]
