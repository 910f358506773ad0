"""Protocols of the realtime layer. Memory implementations serve ONE process; the Redis ones
serve any number of processes sharing one Redis.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from scoreboard.domain.ranking import RankedEntry, Standing


class RankIndex(Protocol):
    """The derived ranking of one board (scope), ordered by `domain.ranking.sort_key`.

    Contract:
    - `apply` is idempotent and monotonic per user: a standing with a lower `version` than the
      one held is ignored, so a late update never overwrites a newer one.
    - `remove` drops the user and ignores any later `apply` for them (deleted users stay out).
    - Reads are consistent snapshots of the index at one moment; ranks are unique, from 1.
    - `replace_all` swaps in a complete new ranking atomically: readers see the old or the new
      index, never a partial one.
    - top/page/rank are O(log n + k).
    - Errors: a `ValueError` means the caller's argument cannot be served (a negative or
      out-of-range offset); it is raised before any round trip and says nothing about the
      index's health. Any other exception is a failure of the index itself.
    """

    async def replace_all(self, pages: AsyncIterator[list[Standing]]) -> int:
        """Rebuild from the store's pages; returns the number of entries loaded."""
        ...

    async def apply(self, standing: Standing, version: int) -> int | None:
        """Set the user's standing (see the contract above) and return their rank afterwards,
        whether or not this call changed it; None when the index cannot tell (the user is not
        on it, or a shared index was lost). One round trip for a remote index."""
        ...

    async def apply_many(self, updates: Sequence[tuple[Standing, int]]) -> list[int | None]:
        """`apply` every (standing, version) in order, as one atomic step (one round trip for a
        remote index), and return, per update, its user's rank once the whole batch is applied
        (one snapshot: a user updated twice gets the same rank twice); None as for `apply`."""
        ...

    async def remove(self, user_id: str) -> None: ...

    async def restore(self, user_id: str) -> None:
        """Lift the tombstone `remove` left (an unbanned or released user): later `apply`s for
        the user count again. It does not put them back on the board: an `apply` does."""
        ...

    async def top(self, limit: int, offset: int = 0) -> list[RankedEntry]: ...

    async def rename(self, user_id: str, display_name: str) -> None:
        """Change the name shown for a user already on the board (else nothing): names do not
        take part in the order, so no version applies."""
        ...

    async def count(self) -> int: ...

    async def page(self, limit: int, offset: int = 0) -> tuple[list[RankedEntry], int]:
        """`top(limit, offset)` and `count()` of one snapshot, in one round trip."""
        ...

    async def entry_of(self, user_id: str) -> RankedEntry | None: ...

    async def around(self, user_id: str, neighbours: int) -> list[RankedEntry]:
        """The user's entry with up to `neighbours` entries above and below; [] if absent."""
        ...

    async def close(self) -> None: ...


def check_view_key(key: str) -> str:
    """`key` if it can name a view's index (`domain.boards.View.key`): non-empty, without `{`
    or `}` (on Redis it is the hash tag of the view's keys); else `ValueError`."""
    if not key or "{" in key or "}" in key:
        raise ValueError(f"not a view key (empty, or with braces): {key[:80]!r}")
    return key


class RankIndexes(Protocol):
    """The rank indexes of many views (one `RankIndex` per view key, `View.key`).

    Contract:
    - `index(key)` returns the view's index, made on first use (no round trip) and the same
      object for the same key until `drop`/`sweep` forgets it. Views are independent: the same
      user holds a standing, a version and a tombstone per view. A key that
      `check_view_key` refuses raises `ValueError`.
    - `apply_views([(key, updates), ...])` is, per entry and in input order, that view's
      `apply_many(updates)` (same versions, tombstones and ranks: each view's ranks once its
      whole batch is applied), for every view at once: ONE round trip for a remote storage,
      none at all when every batch is empty. Each view's batch is atomic; the whole call is
      not: if it fails it raises, and any subset of the views may have been applied
      (updates are versioned, so sending them again is safe). Results are in input order,
      `[]` for an empty batch. An argument the index refuses (a negative version, a score
      out of range) raises `ValueError` before anything is sent.
    - `drop(key)` forgets a view (an old period): its entries, versions, tombstones and any
      rebuild leftovers are freed, and a later `index(key)` is a new object on a view never
      made (a shared one then serves ranks only once rebuilt, as any new view). Only for a
      view no process still writes to or rebuilds.
    - `sweep(keep)` drops every view this storage holds (on a shared storage: also views
      made by other processes) for which `keep(key)` is False, and returns their keys, sorted.
    - `close` closes every index it made; a client passed in belongs to the caller.
    """

    def index(self, key: str) -> RankIndex: ...

    async def apply_views(
        self, updates: Sequence[tuple[str, Sequence[tuple[Standing, int]]]]
    ) -> list[list[int | None]]: ...

    async def drop(self, key: str) -> None: ...

    async def sweep(self, keep: Callable[[str], bool]) -> list[str]: ...

    async def close(self) -> None: ...


MessageHandler = Callable[[bytes], Awaitable[None]]
ResyncHandler = Callable[[], Awaitable[None]]


class Broker(Protocol):
    """Carries small notifications between the processes of one deployment.

    Contract: at-most-once delivery, in publish order per publisher, to every subscribed
    process including the publisher's own. The broker carries messages only; local fan-out to
    WebSocket clients is the hub's job. When delivery may have been lost (a reconnect), the
    broker calls `on_resync` so the hub can send every client a fresh snapshot.
    """

    async def start(self, on_message: MessageHandler, on_resync: ResyncHandler) -> None: ...

    async def publish(self, message: bytes) -> bool:
        """Best effort: never raises for a transport failure (it is logged). Returns whether
        the message was handed to the transport, so a caller may try a notice again later."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    retry_after: int = 0
    refused_by: int | None = None  # `charge`: the index of the first charge refused


class Charge(NamedTuple):
    """One part of a `RateLimiter.charge`: `cost` against `limit` under the counter `name`."""

    name: str
    limit: str
    cost: int = 1


class RateLimiter(Protocol):
    """Counts hits per key against `limits`-notation limits such as `60/minute`.

    Contract, both methods: the count is shared by every process using the same storage; a
    refused hit is not counted at all; `retry_after` is whole seconds (at least 1) until the
    same hit would be allowed.

    - `hit`: one limit, moving window (exact: at most `amount` in any interval of the
      window's length); `cost` hits at once (default 1). For rare hits (sign-in, sign-up).
    - `charge`: several limits for one key, checked and counted together, atomically and in
      one round trip for a remote storage: either every charge is counted or, if any limit
      refuses, none is; `refused_by` is the index of the first refusing charge and
      `retry_after` the longest wait among the refusing ones. Sliding-window counter: the
      previous window's count, weighted by how much of it the sliding window still covers,
      plus the current one, so a burst at a window boundary cannot double the allowance (at
      most `amount` at once, `amount` per window on average, at most `amount × (1 + t /
      window)` in any interval of length t up to a window); memory per key and charge is
      constant, whatever the cost.
      For the hot path (every score event).
    """

    async def hit(self, limit: str, *key: str, cost: int = 1) -> RateDecision: ...

    async def charge(self, charges: Sequence[Charge], *key: str) -> RateDecision: ...

    async def close(self) -> None: ...
