"""Local fan-out of live leaderboard updates to this process's WebSocket clients.

The hub knows nothing of Redis or the database: it is told "scope X may have changed" (by the
broker, from any process) and reads the current top-N through `TopSource`. Changes fan out at
once when the hub is idle (leading edge); while changes keep coming, at most one read per tick
follows (trailing edge), so a lone event is not delayed and a burst costs one pass per tick.
A client gets a message only when what it sees changed. Because every pass reads the true
current state after the notice that caused it, the last message a client receives always
equals the current leaderboard.

Each client is a `Subscriber` (latest-wins slots, see `realtime/subscriber.py`). Hub-wide
timers replace per-connection ones: one keepalive round sends the same ping frame to every
client, and one sweep evicts clients whose socket stopped draining, so a stalled client never
slows the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import orjson

from scoreboard.domain.ranking import RankedEntry
from scoreboard.domain.times import now_rfc3339
from scoreboard.realtime.dialects import Dialect
from scoreboard.realtime.frames import TextFrame, frames
from scoreboard.realtime.subscriber import (
    CLOSE_GRACE_SECONDS,
    CloseCode,
    Items,
    Subscriber,
    Wire,
)

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

TopSource = Callable[[str, int], Awaitable[list[RankedEntry]]]
# `on_pass(frames, since)`: once per fan-out pass that handed frames to clients, how many, and
# the wall-clock time of the earliest commit the pass shows (from the notices' `at`; None when
# unknown, and for snapshots: a new client's, a resync's). Subscribers write synchronously when
# their socket takes it (`Subscriber.show`), so the pass's end is when its frames reached the
# sockets: the hook observes fan-out latency once per pass, never per client.
PassHook = Callable[[int, float | None], None]


class Hub:
    def __init__(
        self,
        top: TopSource,
        *,
        tick_seconds: float = 0.05,
        ping_seconds: float = 25.0,
        send_timeout_seconds: float = 5.0,
        close_grace_seconds: float = CLOSE_GRACE_SECONDS,
        on_drop: Callable[[], None] | None = None,
        tracer: Tracer | None = None,
        on_pass: PassHook | None = None,
    ) -> None:
        self._top = top
        self._tracer = tracer  # a `fan-out` span per round (scoreboard.tracing)
        self._on_pass = on_pass
        self._since: dict[str, float] = {}  # scope -> earliest commit time not yet fanned out
        self._tick = tick_seconds
        self._ping = ping_seconds
        self._send_timeout = send_timeout_seconds
        self._close_grace = close_grace_seconds
        self._on_drop = on_drop
        self._subs: dict[str, set[Subscriber]] = {}
        self._evicted: set[Subscriber] = set()  # closing 1013, watched until abandoned
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # attach vs fan-out: a new client's snapshot is its state
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name="hub-fan-out"),
            asyncio.create_task(self._keepalive(), name="hub-keepalive"),
            asyncio.create_task(self._sweep(), name="hub-sweep"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sub in self._all():
            sub.close(CloseCode.SERVICE_RESTART, "Service restarting; reconnect.")
        self._subs.clear()

    @property
    def connections(self) -> int:
        return sum(len(s) for s in self._subs.values())

    def _all(self) -> list[Subscriber]:
        return [sub for subs in self._subs.values() for sub in subs]

    # -- clients -----------------------------------------------------------------------------
    @asynccontextmanager
    async def subscription(
        self, scope: str, limit: int, dialect: Dialect, wire: Wire
    ) -> AsyncIterator[Subscriber]:
        """A client of `scope` for the duration of the block, its snapshot already pending
        (atomically with respect to fan-out). Call from the connection's reader task: that is
        the task `Subscriber.abandon` cancels."""
        sub = Subscriber(scope, limit, dialect, wire)
        async with self._lock:
            items = tuple(await self._top(scope, limit))
            await dialect.prepare(items)
            snapshot = frames(dialect.snapshot(limit, items, now_rfc3339()))
            sub.show(snapshot, items)
            self._subs.setdefault(scope, set()).add(sub)
        if self._on_pass is not None:
            self._on_pass(len(snapshot), None)
        try:
            yield sub
        finally:
            sub.cancel()
            self._detach(sub)
            self._evicted.discard(sub)

    def _detach(self, sub: Subscriber) -> None:
        subs = self._subs.get(sub.scope)
        if subs is not None:
            subs.discard(sub)

    # -- signals from the broker ---------------------------------------------------------------
    def mark_dirty(self, scope: str, at: float | None = None) -> None:
        """`scope` may have changed; `at`: the wall-clock time of the earliest commit the
        change tells of, when known (fan-out latency)."""
        if at is not None and at < self._since.get(scope, float("inf")):
            self._since[scope] = at
        self._dirty.add(scope)
        self._wake.set()

    async def on_resync(self) -> None:
        """Delivery may have been lost: give every client a fresh snapshot."""
        await self.resnapshot(None)

    def scopes(self) -> list[str]:
        """The scopes that have clients."""
        return [scope for scope, subs in self._subs.items() if subs]

    async def resnapshot(self, only: Callable[[str], bool] | None) -> None:
        """Give every client of the scopes `only` accepts (all when None) a fresh snapshot:
        what a client gets when what it watches is replaced (a broker resync, a reset)."""
        async with self._lock:
            for scope, subs in list(self._subs.items()):
                if not subs or (only is not None and not only(scope)):
                    continue
                top, stamp = await self._read(scope, subs)
                snapshots: dict[tuple[Dialect, int], list[TextFrame]] = {}
                sent = 0
                for sub in subs:
                    items = tuple(top[: sub.limit])
                    key = (sub.dialect, sub.limit)
                    if key not in snapshots:
                        snapshots[key] = frames(sub.dialect.snapshot(sub.limit, items, stamp))
                    sub.resnapshot(snapshots[key], items)
                    sent += len(snapshots[key])
                if self._on_pass is not None:
                    self._on_pass(sent, None)

    # -- fan-out -------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            dirty, self._dirty = self._dirty, set()
            for scope in dirty:
                try:
                    await self.fan_out(scope)
                except Exception:
                    log.exception("hub: fan-out of %s failed; will retry", scope)
                    self.mark_dirty(scope)
                    await asyncio.sleep(min(1.0, self._tick * 10 + 0.1))
            # Trailing edge: notices arriving now wait for the tick, then share one pass.
            await asyncio.sleep(self._tick)

    async def fan_out(self, scope: str) -> None:
        if self._tracer is None:
            await self._fan_out(scope)
            return
        with self._tracer.start_as_current_span("fan-out") as span:
            span.set_attribute("scoreboard.scope", scope)
            span.set_attribute("scoreboard.clients", len(self._subs.get(scope, ())))
            await self._fan_out(scope)

    async def _fan_out(self, scope: str) -> None:
        async with self._lock:
            since = self._since.pop(scope, None)
            subs = self._subs.get(scope)
            if not subs:
                return
            top, stamp = await self._read(scope, subs)
            sent = _Pass(top, stamp).deliver(subs)
            if sent and self._on_pass is not None:
                self._on_pass(sent, since)

    async def _read(self, scope: str, subs: set[Subscriber]) -> tuple[list[RankedEntry], str]:
        """The top as deep as any subscriber sees, each dialect in use prepared for it (see
        `Dialect.prepare`), and the pass's timestamp."""
        top = await self._top(scope, max(s.limit for s in subs))
        for dialect in {id(sub.dialect): sub.dialect for sub in subs}.values():
            await dialect.prepare(top)
        return top, now_rfc3339()

    # -- hub-wide timers -----------------------------------------------------------------------
    async def _keepalive(self) -> None:
        """Every `ping_seconds`, one ping frame, encoded once, to every client."""
        while True:
            await asyncio.sleep(self._ping)
            message = TextFrame(orjson.dumps({"type": "ping", "timestamp": now_rfc3339()}).decode())
            for sub in self._all():
                if sub.pinged:
                    sub.ping(message)

    async def _sweep(self) -> None:
        """Evict clients whose socket took nothing for `send_timeout_seconds`; abandon those
        that take not even the close within `close_grace_seconds` more."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(1.0, self._send_timeout / 4))
            now = loop.time()
            for sub in self._all():
                since = sub.sending_since
                if since is not None and now - since >= self._send_timeout:
                    sub.evict()
                    self._detach(sub)
                    self._evicted.add(sub)
                    if self._on_drop is not None:
                        self._on_drop()
            for sub in list(self._evicted):
                since = sub.sending_since
                if since is not None and now - since >= self._send_timeout + self._close_grace:
                    self._evicted.discard(sub)
                    sub.abandon()


class _Pass:
    """One fan-out pass: each (limit, previous state) compared once and each change encoded
    once per (dialect, limit, previous state), the same list of frames going to every client
    in that position. Objects whose `id` is a key stay referenced (`_pinned`) for the pass."""

    def __init__(self, top: Sequence[RankedEntry], stamp: str) -> None:
        self._top = top
        self._stamp = stamp
        self._states: dict[int, Items] = {}
        self._unchanged: dict[tuple[int, int], bool] = {}
        self._encoded: dict[tuple[Dialect, int, int], list[TextFrame]] = {}
        self._pinned: list[object] = []

    def deliver(self, subs: set[Subscriber]) -> int:
        """Hand each client that sees a change its frames; how many frames were handed."""
        sent = 0
        for sub in subs:
            limit = sub.limit
            items = self._states.get(limit)
            if items is None:
                items = self._states[limit] = tuple(self._top[:limit])
            current = sub.pending_state
            key = (limit, id(current))
            unchanged = self._unchanged.get(key)
            if unchanged is None:
                unchanged = self._unchanged[key] = current == items
                self._pinned.append(current)
            if not unchanged:
                messages = self._messages(sub, items)
                sent += len(messages)
                sub.show(messages, items)
        return sent

    def _messages(self, sub: Subscriber, items: Items) -> list[TextFrame]:
        shown = sub.shown
        key = (sub.dialect, sub.limit, id(shown))
        messages = self._encoded.get(key)
        if messages is None:
            if shown is None:
                texts = sub.dialect.snapshot(sub.limit, items, self._stamp)
            else:
                texts = sub.dialect.update(sub.limit, shown, items, self._stamp)
            messages = self._encoded[key] = frames(texts)
            self._pinned.append(shown)
        return messages
