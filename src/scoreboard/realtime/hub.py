"""Local fan-out of live leaderboard updates to this process's WebSocket clients.

The hub knows nothing of Redis or the database: it is told "scope X may have changed" (by the
broker, from any process) and reads the current top-N through `TopSource`. Changes are coalesced:
at most one read per scope per tick, and a client is sent a message only when what it sees
changed. Because every tick reads the true current state, the last message a client receives
always equals the current leaderboard.

Each client has a bounded queue. A client that stops reading fills it and is dropped (its queue
is replaced by a close marker with a reconnect hint) so it never slows the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import orjson

from scoreboard.domain.ranking import RankedEntry
from scoreboard.domain.times import now_rfc3339
from scoreboard.realtime.dialects import Dialect

log = logging.getLogger(__name__)

TopSource = Callable[[str, int], Awaitable[list[RankedEntry]]]


class Close:
    """Queue marker: close the socket with `code` and `reason`."""

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


Outgoing = str | Close


@dataclass(eq=False)
class Subscriber:
    scope: str
    limit: int
    dialect: Dialect
    queue: asyncio.Queue[Outgoing]
    last: tuple[RankedEntry, ...] = ()
    dropped: bool = False
    sent: int = field(default=0)

    def offer(self, message: str) -> bool:
        """Queue a message; on overflow drop the client. False once the client is dropped."""
        if self.dropped:
            return False
        try:
            self.queue.put_nowait(message)
            return True
        except asyncio.QueueFull:
            self.drop(1013, "Client too slow; reconnect for a fresh snapshot.")
            return False

    def drop(self, code: int, reason: str, last_words: str | None = None) -> None:
        """Discard what is queued, then (optionally) one last message and the close."""
        self.dropped = True
        while not self.queue.empty():
            self.queue.get_nowait()
        if last_words is not None:
            self.queue.put_nowait(last_words)
        self.queue.put_nowait(Close(code, reason))


class Hub:
    def __init__(
        self,
        top: TopSource,
        *,
        tick_seconds: float = 0.05,
        queue_size: int = 64,
        on_drop: Callable[[], None] | None = None,
    ) -> None:
        self._top = top
        self._tick = tick_seconds
        self._queue_size = queue_size
        self._on_drop = on_drop
        self._subs: dict[str, set[Subscriber]] = {}
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # attach vs fan-out: a new client's snapshot is its `last`
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="hub")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for subs in self._subs.values():
            for sub in subs:
                sub.drop(1012, "Service restarting; reconnect.")
        self._subs.clear()

    @property
    def connections(self) -> int:
        return sum(len(s) for s in self._subs.values())

    # -- clients -----------------------------------------------------------------------------
    async def attach(self, scope: str, limit: int, dialect: Dialect) -> Subscriber:
        """Register a client and queue its snapshot, atomically with respect to fan-out."""
        sub = Subscriber(scope, limit, dialect, asyncio.Queue(self._queue_size))
        async with self._lock:
            items = tuple(await self._top(scope, limit))
            await dialect.prepare(items)
            for message in dialect.snapshot(limit, items, now_rfc3339()):
                sub.offer(message)
            sub.last = items
            self._subs.setdefault(scope, set()).add(sub)
        return sub

    def detach(self, sub: Subscriber) -> None:
        subs = self._subs.get(sub.scope)
        if subs is not None:
            subs.discard(sub)

    # -- signals from the broker ---------------------------------------------------------------
    async def on_message(self, data: bytes) -> None:
        try:
            scope = orjson.loads(data).get("scope", "global")
        except (orjson.JSONDecodeError, AttributeError):
            log.warning("hub: ignoring malformed broker message %r", data[:100])
            return
        self.mark_dirty(str(scope))

    def mark_dirty(self, scope: str) -> None:
        self._dirty.add(scope)
        self._wake.set()

    async def on_resync(self) -> None:
        """Delivery may have been lost: give every client a fresh snapshot."""
        async with self._lock:
            for scope, subs in list(self._subs.items()):
                if not subs:
                    continue
                top, stamp = await self._read(scope, subs)
                for sub in list(subs):
                    items = tuple(top[: sub.limit])
                    for message in sub.dialect.snapshot(sub.limit, items, stamp):
                        sub.offer(message)
                    sub.last = items
                    self._reap(sub)

    # -- fan-out -------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self._tick)  # coalesce a burst into one read
            self._wake.clear()
            dirty, self._dirty = self._dirty, set()
            for scope in dirty:
                try:
                    await self.fan_out(scope)
                except Exception:
                    log.exception("hub: fan-out of %s failed; will retry", scope)
                    self.mark_dirty(scope)
                    await asyncio.sleep(min(1.0, self._tick * 10 + 0.1))

    async def fan_out(self, scope: str) -> None:
        async with self._lock:
            subs = self._subs.get(scope)
            if not subs:
                return
            top, stamp = await self._read(scope, subs)
            encoded: dict[tuple[str, int, int], list[str]] = {}
            states: dict[int, tuple[RankedEntry, ...]] = {}
            pinned: list[tuple[RankedEntry, ...]] = []  # keeps id() keys unique in this pass
            for sub in list(subs):
                items = states.get(sub.limit)
                if items is None:
                    items = states[sub.limit] = tuple(top[: sub.limit])
                if items == sub.last:
                    continue
                # Subscribers moving from the same previous state share one encoding.
                key = (sub.dialect.name, sub.limit, id(sub.last))
                messages = encoded.get(key)
                if messages is None:
                    messages = sub.dialect.update(sub.limit, sub.last, items, stamp)
                    encoded[key] = messages
                    pinned.append(sub.last)
                for message in messages:
                    sub.offer(message)
                sub.last = items
                self._reap(sub)

    async def _read(self, scope: str, subs: set[Subscriber]) -> tuple[list[RankedEntry], str]:
        """The top as deep as any subscriber sees, each dialect in use prepared for it (see
        `Dialect.prepare`), and the pass's timestamp."""
        top = await self._top(scope, max(s.limit for s in subs))
        for dialect in {id(sub.dialect): sub.dialect for sub in subs}.values():
            await dialect.prepare(top)
        return top, now_rfc3339()

    def _reap(self, sub: Subscriber) -> None:
        if sub.dropped:
            self.detach(sub)
            if self._on_drop is not None:
                self._on_drop()
