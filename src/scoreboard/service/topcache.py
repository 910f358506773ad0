"""The top of each board, cached per process as entries and as pre-encoded JSON bytes.

Two uses:
- a fast path: while the rank index is healthy, `fresh` answers the common "top N" read (the
  default leaderboard page, every hub tick of every process) without a round trip to the index
  and, through `Cached.page_json`, without encoding anything;
- a last resort: `last_known` keeps the most recent top even after it was invalidated, so reads
  can still be answered when both the index and the database are unreachable.

Invalidation: every change to a board invalidates its entries: the local write path calls
`invalidate` directly, other processes' writes arrive through the broker, and a broker resync
invalidates everything (messages may have been lost). A generation number guards the race of a
read that started before an invalidation and finishes after it: its result is not stored as
fresh. `max_age` bounds staleness should an invalidation ever be lost anyway.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from scoreboard.domain.ranking import RankedEntry
from scoreboard.domain.times import rfc3339


@dataclass(frozen=True, slots=True)
class Cached:
    """One cached top: ranks 1..len(entries) of `scope` (fewer than `limit` at the end)."""

    scope: str
    limit: int
    entries: tuple[RankedEntry, ...]
    total: int
    generated_at: datetime
    generation: int
    stored_at: float  # monotonic
    fresh: bool  # from the index while it was healthy: usable on the fast path
    items_json: bytes = field(repr=False)  # the `items` array, encoded once

    @property
    def complete(self) -> bool:
        """The entries are the whole board (a smaller limit can be cut from them)."""
        return len(self.entries) >= self.total

    def covers(self, limit: int, offset: int) -> bool:
        return offset + limit <= self.limit or self.complete

    def slice(self, limit: int, offset: int = 0) -> list[RankedEntry]:
        return list(self.entries[offset : offset + limit])

    def page_json(self, limit: int | None = None, head: bytes = b"{}") -> bytes:
        """The canonical leaderboard page at offset 0 (`GET /api/v1/leaderboard`) as JSON
        bytes; the items are the ones encoded once, when `limit` is this entry's limit.
        `head`: an encoded object whose members come first (scope, period, next_reset_at)."""
        limit = self.limit if limit is None else limit
        if limit == self.limit:
            items = self.items_json
        else:
            items = orjson.dumps([e.as_dict() for e in self.entries[:limit]])
        page = orjson.dumps({"limit": limit, "offset": 0, "total": self.total})
        stamp = orjson.dumps(rfc3339(self.generated_at))
        joined = head[:-1] + b"," + page[1:-1] if head != b"{}" else page[:-1]
        return joined + b',"items":' + items + b',"generated_at":' + stamp + b"}"


class TopCache:
    """Per (scope, limit) cache of the top entries; see the module docstring."""

    def __init__(
        self, max_age: float = 2.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_age = max_age
        self._clock = clock
        self._base = 0  # bumped by invalidate(None)
        self._scopes: dict[str, int] = {}  # bumped by invalidate(scope)
        self._entries: dict[tuple[str, int], Cached] = {}

    def generation(self, scope: str) -> int:
        """Take it before reading the index; hand it to `put` after."""
        return self._base + self._scopes.get(scope, 0)

    def invalidate(self, scope: str | None = None) -> None:
        """Nothing of `scope` (every scope when None) cached before now is fresh any more.
        Entries are kept for `last_known`."""
        if scope is None:
            self._base += 1
        else:
            self._scopes[scope] = self._scopes.get(scope, 0) + 1

    def put(
        self,
        scope: str,
        limit: int,
        entries: list[RankedEntry],
        total: int,
        *,
        generation: int,
        fresh: bool = True,
    ) -> Cached:
        """Store a top read that began at `generation`; fresh only if nothing changed since."""
        cached = Cached(
            scope=scope,
            limit=limit,
            entries=tuple(entries),
            total=total,
            generated_at=datetime.now(UTC),
            generation=generation,
            stored_at=self._clock(),
            fresh=fresh and generation == self.generation(scope),
            items_json=orjson.dumps([e.as_dict() for e in entries]),
        )
        self._entries[(scope, limit)] = cached
        return cached

    def fresh(self, scope: str, limit: int, offset: int = 0) -> Cached | None:
        """A fresh entry that can answer ranks offset+1..offset+limit, or None."""
        exact = self._entries.get((scope, limit))
        if offset == 0 and exact is not None and self._usable(exact):
            return exact
        for (s, _), cached in self._entries.items():
            if s == scope and cached.covers(limit, offset) and self._usable(cached):
                return cached
        return None

    def last_known(self, scope: str, limit: int, offset: int = 0) -> Cached | None:
        """The most recent entry, fresh or not, that can answer the read; None if none."""
        best: Cached | None = None
        for (s, _), cached in self._entries.items():
            if s != scope or not cached.covers(limit, offset):
                continue
            if best is None or cached.stored_at > best.stored_at:
                best = cached
        return best

    def _usable(self, cached: Cached) -> bool:
        return (
            cached.fresh
            and cached.generation == self.generation(cached.scope)
            and self._clock() - cached.stored_at <= self.max_age
        )
