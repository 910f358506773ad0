"""Rank-index upkeep: when the index may be used, and how it is rebuilt from the store.

One state machine per process, driven by `IndexKeeper.maintain` every `check_seconds`:

- healthy: updates go to the index, reads come from it;
- broken (an index call failed, the index was lost, it diverged from the store): updates are
  deferred, reads go to SQL, and `maintain` rebuilds;
- rebuilding, here or in another process: updates are deferred and applied once the new index
  landed. A rebuild by another process is noticed through `SharedIndex.state` (its lock): the
  rebuilder holds the lock for `grace` seconds before reading the store, long enough for every
  process polling without failure to notice it and stop updating the live index, since the
  swap would overwrite updates made while it stages. A process that cannot be sure it noticed
  in time rebuilds again itself afterwards.

Deferred updates are applied with their versions, so one that the new index already holds (or
holds a newer one of) is ignored. The in-process index has no `SharedIndex` side: no lock, no
grace, no polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol, runtime_checkable

from scoreboard.domain.ranking import RankedEntry, Standing
from scoreboard.realtime.base import RankIndex

log = logging.getLogger(__name__)

COMPARED = 100  # the divergence check compares the count and this many top entries
MAX_DEFERRED = 100_000  # beyond this many users waiting, a fresh rebuild is cheaper
MAX_BACKOFF = 2.0  # seconds between failed upkeep attempts, at most
# Standings per page read for a rebuild. Each page must arrive within the store's timeout even
# on a loaded machine (5000 cold rows took seconds there); the index bounds its own writes.
REBUILD_PAGE = 1000
FLUSH_CHUNK = 500  # deferred updates per index call: bounded, each a short script on Redis


class Standings(Protocol):
    """What a keeper reads from the store: one view's standings (`service.views.ViewSource`)."""

    def iter_standings(self, page_size: int = 1000) -> AsyncIterator[list[Standing]]: ...

    async def standings_page(self, limit: int, offset: int) -> tuple[list[Standing], int]: ...


@runtime_checkable
class SharedIndex(Protocol):
    """What an index shared by several processes adds to `RankIndex` (`SharedRedisIndex`)."""

    async def state(self) -> tuple[str | None, bool]:
        """(generation marker, None when the index was lost; whether a rebuild is running)."""
        ...

    def rebuild_lock(self) -> AbstractAsyncContextManager[bool]:
        """Held during a rebuild; yields False when another process holds it."""
        ...


def ranked(standings: list[Standing], offset: int) -> list[RankedEntry]:
    return [
        RankedEntry(offset + i + 1, s.user_id, s.display_name, s.score)
        for i, s in enumerate(standings)
    ]


@contextlib.asynccontextmanager
async def _own_lock() -> AsyncIterator[bool]:
    yield True


class IndexKeeper:
    """Keeps one process's view of the rank index: `ok` says whether reads may use it."""

    def __init__(
        self,
        store: Standings,
        index: RankIndex,
        *,
        check_seconds: float = 0.5,
        on_new_index: Callable[[bool], Awaitable[None]] | None = None,
        on_rebuild: Callable[[str], None] | None = None,
    ) -> None:
        """`on_new_index(here)` runs after a new index landed: rebuilt here (True) or by
        another process whose rebuild this one joined (False). `on_rebuild(outcome)` is told
        of each rebuild this process attempted: "done" or "failed" (metrics)."""
        self._on_rebuild = on_rebuild
        self._store = store
        self._index = index
        self._shared = index if isinstance(index, SharedIndex) else None
        self.check_seconds = check_seconds
        self._on_new_index = on_new_index
        self._ok = False  # False until a rebuild succeeds; reads then go to SQL
        self._deferring_since: float | None = time.monotonic()  # `ok` last became False
        self._task: asyncio.Task[None] | None = None  # a background upkeep step (`maintain`)
        self._rebuilding = False  # this process is rebuilding
        self._joined: bool | None = None  # another process is: were we healthy before?
        self._deferred: dict[str, tuple[Standing, int]] = {}
        self._deferred_removals: set[str] = set()
        self._deferred_restores: set[str] = set()
        self._overflow = False
        self._generation: str | None = None  # the marker of the index we trust
        self._last_clean: float | None = None  # start of the last poll that saw no rebuild
        self._fresh = True  # nothing committed through this process yet
        self._local_lock = asyncio.Lock()
        self._retry_at = 0.0
        self._failures = 0

    @property
    def ok(self) -> bool:
        """Whether reads and updates may use the index; while False, updates are deferred."""
        return self._ok

    @ok.setter
    def ok(self, value: bool) -> None:
        if value:
            self._deferring_since = None
        elif self._ok or self._deferring_since is None:
            self._deferring_since = time.monotonic()
        self._ok = value

    @property
    def grace(self) -> float:
        """How long a rebuilder waits, lock held, before reading the store (module doc)."""
        return 3 * self.check_seconds if self._shared is not None else 0.0

    def broken(self, reason: str) -> None:
        """The index cannot be trusted: read from SQL and rebuild."""
        if self.ok:
            log.warning("rank index unusable (%s); reading from the database until rebuilt", reason)
        self.ok = False
        if self._joined:
            self._joined = False

    # -- updates, after commit -----------------------------------------------------------------
    async def update(self, standing: Standing, version: int) -> int | None:
        """Apply a committed standing, or defer it while the index is unusable. Never raises.
        Returns the user's rank from the index afterwards, or None when the index cannot be
        trusted for it (deferred, failed, lost): the caller then asks the store."""
        return (await self.update_many([(standing, version)]))[0]

    async def update_many(self, updates: Sequence[tuple[Standing, int]]) -> list[int | None]:
        """`update` of a committed batch, in one index call (`RankIndex.apply_many`): the
        ranks once the whole batch is applied, None for each when the index cannot tell."""
        if not self.taking(updates):
            return [None] * len(updates)
        try:
            ranks = await self._index.apply_many(updates)
        except Exception as exc:
            return self.failed(updates, exc)
        return self.applied(ranks)

    # The three steps of `update_many`, for a caller that applies the updates of several
    # keepers' indexes in one round trip (`RankIndexes.apply_views`).
    def taking(self, updates: Sequence[tuple[Standing, int]]) -> bool:
        """Whether the index takes `updates` now; if not, they are deferred."""
        self._fresh = False
        if self.ok:
            return True
        for standing, version in updates:
            self._defer(standing, version)
        return False

    def failed(self, updates: Sequence[tuple[Standing, int]], exc: Exception) -> list[int | None]:
        self.broken(f"update failed: {exc!r}")
        for standing, version in updates:
            self._defer(standing, version)
        return [None] * len(updates)

    def applied(self, ranks: list[int | None]) -> list[int | None]:
        return ranks if self.ok else [None] * len(ranks)

    async def rename(self, user_id: str, display_name: str) -> None:
        """Show a new name on the index. Never raises; while the index is unusable there is
        nothing to do: the rebuild reads names from the store."""
        if not self.ok:
            return
        try:
            await self._index.rename(user_id, display_name)
        except Exception as exc:
            self.broken(f"rename failed: {exc!r}")

    async def remove(self, user_id: str) -> None:
        """Take a deleted user off the index, or remember to. Never raises."""
        self._fresh = False
        if not self.ok:
            self._deferred.pop(user_id, None)
            self._deferred_removals.add(user_id)
            return
        try:
            await self._index.remove(user_id)
        except Exception as exc:
            self.broken(f"removal failed: {exc!r}")
            self._deferred_removals.add(user_id)

    async def restore(self, user_id: str, standing: Standing | None, version: int) -> None:
        """Put a user back (unbanned, released): lift their tombstone, then apply their
        standing (None: no row on this board). Never raises; what fails is done after the
        rebuild it causes."""
        self._fresh = False
        self._deferred_removals.discard(user_id)
        try:
            await self._index.restore(user_id)
        except Exception as exc:
            self.broken(f"restore failed: {exc!r}")
            self._deferred_restores.add(user_id)
        if standing is not None:
            await self.update_many([(standing, version)])

    def _defer(self, standing: Standing, version: int) -> None:
        held = self._deferred.pop(standing.user_id, None)
        if held is not None and version and held[1] >= version:
            standing, version = held
        self._deferred[standing.user_id] = (standing, version)
        if len(self._deferred) > MAX_DEFERRED:
            self._deferred.clear()
            self._overflow = True

    async def _flush(self) -> None:
        """Apply what was deferred (and what gets deferred meanwhile) to the index."""
        while self._deferred or self._deferred_removals or self._deferred_restores:
            batch, self._deferred = self._deferred, {}
            removals, self._deferred_removals = self._deferred_removals, set()
            restores, self._deferred_restores = self._deferred_restores, set()
            try:
                for user_id in restores - removals:
                    await self._index.restore(user_id)
                updates = [update for user_id, update in batch.items() if user_id not in removals]
                for start in range(0, len(updates), FLUSH_CHUNK):
                    await self._index.apply_many(updates[start : start + FLUSH_CHUNK])
                for user_id in removals:
                    await self._index.remove(user_id)
            except BaseException:
                self._deferred_removals |= removals
                self._deferred_restores |= restores
                raise

    # -- upkeep --------------------------------------------------------------------------------
    async def maintain(self, *, full: bool = False, wait: bool = True) -> None:
        """One step: watch the shared index, rebuild when broken, and (`full`) compare the
        index with the store. Failures are logged and retried with backoff.

        `wait=False` (the periodic upkeep): the rebuild or comparison runs in a task of its
        own and this returns at once, so that one view's rebuild never delays the watch of
        the others (a process that polls late must treat another's rebuild as noticed too
        late, and rebuild again itself). Until that task ends, steps do nothing."""
        if self._task is not None:
            return  # its own rebuild: no poll meanwhile (it would see its own lock)
        await self._watch()
        if self._rebuilding or self._joined is not None or time.monotonic() < self._retry_at:
            return
        if not (full or not self.ok):
            return
        if wait:
            await self._step(full)
            return
        task = asyncio.create_task(self._step(full), name="index-upkeep")
        self._task = task
        task.add_done_callback(self._step_ended)

    def _step_ended(self, task: asyncio.Task[None]) -> None:
        if self._task is task:
            self._task = None
        if not task.cancelled() and task.exception() is not None:  # `_step` logs its own
            log.error("index upkeep step failed", exc_info=task.exception())

    async def close(self) -> None:
        """Cancel a background upkeep step (`maintain(wait=False)`) and wait for it."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _step(self, full: bool) -> None:
        try:
            if self.ok and full and not await self._agrees_with_store():
                self.broken("it disagrees with the database")
            if not self.ok:
                await self.rebuild()
        except Exception as exc:
            self._failures += 1
            delay = min(MAX_BACKOFF, self.check_seconds * 2**self._failures)
            self._retry_at = time.monotonic() + delay
            level = logging.WARNING if self._failures == 1 else logging.DEBUG
            where = getattr(self._index, "where", "the rank index")  # Redis names its server
            log.log(level, "index upkeep of %s failed (%r); retrying in %.1fs", where, exc, delay)
        else:
            self._failures = 0

    async def rebuild(self, on_page: Callable[[int], None] | None = None) -> int | None:
        """Rebuild the index from the store; reads use SQL until it is complete. Returns the
        number of users indexed, or None when another process is rebuilding it."""
        async with self._local_lock:
            lock = self._shared.rebuild_lock() if self._shared is not None else _own_lock()
            async with lock as acquired:
                if not acquired:
                    return None
                self._rebuilding, self.ok = True, False
                try:
                    count = await self._rebuild(on_page)
                except BaseException:
                    self._rebuilt("failed")
                    raise
                finally:
                    self._rebuilding = False
                # The lock is still ours: no other process's rebuild began before now. As a
                # poll that saw no rebuild, this lets the next poll join one begun after.
                self._last_clean = time.monotonic()
        self._rebuilt("done")
        log.info("rank index rebuilt: %d users", count)
        if self._on_new_index is not None:
            await self._on_new_index(True)
        return count

    def _rebuilt(self, outcome: str) -> None:
        if self._on_rebuild is not None:
            self._on_rebuild(outcome)

    async def _rebuild(self, on_page: Callable[[int], None] | None) -> int:
        await asyncio.sleep(self.grace)
        # Everything deferred so far was committed before the store is read below.
        self._deferred.clear()
        self._overflow = False
        count = await self._index.replace_all(self._pages(on_page))
        generation = (await self._shared.state())[0] if self._shared is not None else None
        await self._flush()
        self._generation = generation
        self.ok = not self._overflow
        return count

    async def _pages(self, on_page: Callable[[int], None] | None) -> AsyncIterator[list[Standing]]:
        async for page in self._store.iter_standings(page_size=REBUILD_PAGE):
            if on_page is not None:
                on_page(len(page))
            yield page

    async def _watch(self) -> None:
        """Poll the shared index: join a rebuild by another process, notice a lost index."""
        if self._shared is None or self._rebuilding:
            return
        started = time.monotonic()
        try:
            marker, locked = await self._shared.state()
        except Exception as exc:
            self.broken(f"cannot reach it: {exc!r}")
            self._last_clean = None
            return
        if locked:
            if self._joined is None:
                self._join()
            self._last_clean = None
            return
        self._last_clean = started
        if self._joined is not None:
            await self._joined_rebuild_ended(marker)
        elif marker is None:
            self.broken("its generation marker is missing: the index was lost")
        elif self.ok and marker != self._generation:
            self.broken("it was rebuilt by another process without this one noticing")

    def _join(self) -> None:
        # The lock was taken after the previous poll that saw no rebuild (`_last_clean`), so
        # the rebuild reads the store `grace` after it at the earliest. In time if this
        # process defers updates since less than that (from now on, or since it broke):
        # every update committed after the read is then deferred, applied after the swap.
        margin = 0.1 * self.grace
        since = time.monotonic() if self._deferring_since is None else self._deferring_since
        clean = self._last_clean is not None and since - self._last_clean < self.grace - margin
        if not (self._fresh or clean):
            self.broken("another process started a rebuild this one noticed too late")
            return
        log.info("rank index: another process is rebuilding it; deferring updates")
        if self.ok:  # everything deferred so far was committed before the rebuild reads
            self._deferred.clear()
            self._overflow = False
        # (Deferred while broken: some may be committed after the read; kept, and applied
        # after the swap by version, so those the new index holds change nothing.)
        self._joined = self.ok
        self.ok = False

    async def _joined_rebuild_ended(self, marker: str | None) -> None:
        was_ok, self._joined = self._joined, None
        landed = marker is not None and marker != self._generation
        try:
            await self._flush()
        except Exception as exc:
            self.broken(f"update failed: {exc!r}")
            return
        # A rebuild that did not land left the old index, valid only if it was before.
        self.ok = (landed or bool(was_ok)) and not self._overflow
        if landed:
            self._generation = marker
            if self._on_new_index is not None:
                await self._on_new_index(False)

    async def _agrees_with_store(self) -> bool:
        """Cheap divergence check: same count and same top entries as SQL. The index trails
        the store by the updates in flight, so it may match the store read before or after
        it, and a few attempts are made before calling it diverged."""
        for attempt in range(3):
            before = await self._store.standings_page(COMPARED, 0)
            try:
                items, total = await self._index.page(COMPARED)
                indexed = (total, items)
            except Exception:
                return False
            after = await self._store.standings_page(COMPARED, 0)
            views = [(total, ranked(standings, 0)) for standings, total in (before, after)]
            if indexed in views:
                return True
            await asyncio.sleep(0.05 * (attempt + 1))
        return False
