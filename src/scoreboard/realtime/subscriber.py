"""One live connection's outbox: slots, not a queue.

Leaderboard state is latest-wins, so a connection keeps at most one pending board change
(the messages that move the client from what it has been sent to the current state; a newer
change replaces them, re-encoded from what was sent, so diff dialects stay exact), one
pending server notice (a keepalive ping) and one close. Nothing accumulates however slow the
client: its memory is the slots plus what the server's socket buffers.

Sends happen in the caller (the hub's fan-out) when the socket takes them at once, as it does
for a client that keeps up: the pre-built frames (`realtime/frames.py`) are handed to the wire
synchronously (`Wire.write`), no coroutine, task or ASGI message per message. Only a send that
has to wait, and the close, move to a coroutine (`_flush`, started inline; a task of its own,
`_resume`, once it waits), which ends when the slots are empty, so an idle connection has no
task and a slow one never holds up the fan-out. Replies to a client's
frames are sent inline by the connection's reader (`reply`), before it reads the next frame:
a client's replies wait on its own reading, never in a buffer, and a burst of pings never
evicts a client that reads.

A send that has not completed for `send_timeout` means the client's socket is not draining;
the hub's sweep then evicts the subscriber (`evict`: close 1013, counted in
`scoreboard_ws_dropped_total`) and abandons it (`abandon`: stops serving it) when even the close
cannot be handed to the socket within `CLOSE_GRACE_SECONDS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator, Sequence
from enum import IntEnum
from typing import Any, Protocol

from scoreboard.domain.ranking import RankedEntry
from scoreboard.realtime.dialects import Dialect
from scoreboard.realtime.frames import TextFrame

Items = tuple[RankedEntry, ...]

CLOSE_GRACE_SECONDS = 10.0  # as uvicorn's and websockets' close timeout


class CloseCode(IntEnum):
    """Every close the live endpoint sends, and whether a client should reconnect (docs/API.md,
    "Live updates")."""

    POLICY_VIOLATION = 1008  # bad parameters: fix the request, do not retry as is
    MESSAGE_TOO_BIG = 1009  # a client frame over the limit
    SERVICE_RESTART = 1012  # reconnect (another process or this one after restart)
    TRY_AGAIN_LATER = 1013  # the client did not read: reconnect for a fresh snapshot
    UNAUTHENTICATED = 4401  # token missing, bad or expired: reconnect with a new token


TOO_SLOW = "Client too slow; reconnect for a fresh snapshot."


class Wire(Protocol):
    """The connection's transport, as the subscriber needs it."""

    def write(self, frame: TextFrame) -> bool:
        """Hand `frame` to the socket now if it takes it without waiting; False when it would
        have to wait (then `send` it). Raises once the connection is gone."""
        ...

    async def send(self, frame: TextFrame) -> None:
        """Send one text frame. May wait while the socket does not drain; raises once the
        connection is gone."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Send the close frame (the reader then sees the disconnect). Same waits and raises."""
        ...


class Subscriber:
    """A live client of one scope: what it sees (`limit`, `dialect`) and its outbox slots.

    Board state: `shown` is what the client has once the messages already taken are sent
    (None: it needs a snapshot); `target` is where the pending `board` messages lead."""

    __slots__ = (
        "_flusher",
        "_inflight",
        "_loop",
        "_owner",
        "_wire",
        "abandoned",
        "board",
        "closing",
        "dialect",
        "evicted",
        "expiry",
        "limit",
        "notice",
        "pinged",
        "scope",
        "sending_since",
        "shown",
        "target",
    )

    def __init__(self, scope: str, limit: int, dialect: Dialect, wire: Wire) -> None:
        self.scope = scope
        self.limit = limit
        self.dialect = dialect
        self.shown: Items | None = None
        self.target: Items = ()
        self.board: Sequence[TextFrame] | None = None
        self.notice: TextFrame | None = None
        self.pinged = True  # gets keepalive pings (one subscription per connection does)
        self.closing: tuple[int, str, TextFrame | None] | None = None
        self.evicted = False
        self.abandoned = False
        self.sending_since: float | None = None  # loop time the oldest unfinished send began
        self.expiry: asyncio.TimerHandle | None = None
        self._wire = wire
        self._owner = asyncio.current_task()  # the connection's reader, cancelled by `abandon`
        self._flusher: asyncio.Task[None] | None = None
        self._inflight = 0
        self._loop = asyncio.get_running_loop()

    # -- slots (called by the hub) -------------------------------------------------------------
    @property
    def pending_state(self) -> Items | None:
        """The state the client is moving to (its state, when nothing is pending)."""
        return self.target if self.board is not None else self.shown

    def show(self, messages: Sequence[TextFrame], items: Items) -> None:
        """Replace the pending board change: `messages` move the client from `shown` (a
        snapshot when `shown` is None) to `items`."""
        if self.closing is None:
            self.board, self.target = messages, items
            self._kick()

    def resnapshot(self, messages: Sequence[TextFrame], items: Items) -> None:
        """The next board message is the snapshot `messages` of `items`, whatever was sent."""
        self.shown = None
        self.show(messages, items)

    def ping(self, message: TextFrame) -> None:
        if self.closing is None:
            self.notice = message
            self._kick()

    def close(self, code: int, reason: str, last_words: TextFrame | None = None) -> None:
        """Discard what is pending; send `last_words` (if any) and the close, once."""
        if self.closing is None:
            self.closing = (code, reason, last_words)
            self.board = self.notice = None
            self._kick()

    def evict(self) -> None:
        """The socket stopped draining: close 1013 as soon as it takes the frame."""
        self.evicted = True
        self.close(CloseCode.TRY_AGAIN_LATER, TOO_SLOW)

    def abandon(self) -> None:
        """Not even the close was taken: stop serving the connection (its reader returns)."""
        self.abandoned = True
        self.cancel()
        if self._owner is not None:
            self._owner.cancel()

    def cancel(self) -> None:
        """Stop the sender and the expiry timer (the connection is ending)."""
        if self._flusher is not None:
            self._flusher.cancel()
        if self.expiry is not None:
            self.expiry.cancel()

    # -- sending -------------------------------------------------------------------------------
    async def reply(self, message: str) -> None:
        """Answer a client frame now (see the module docstring)."""
        if self.closing is None:
            await self._send(TextFrame(message))

    def _kick(self) -> None:
        if self._flusher is not None or self.abandoned:
            return
        try:
            rest = self._write_now()
        except Exception:
            return  # the connection is gone; its reader sees the disconnect
        if rest is None:
            return
        flush = self._flush(rest)
        try:
            waiting = flush.send(None)  # run it here until it would wait, if it ever does
        except StopIteration:
            return
        self._flusher = self._loop.create_task(_resume(flush, waiting))

    def _write_now(self) -> Sequence[TextFrame] | None:
        """Empty the slots into the socket while it takes frames at once. None: all sent;
        else what is left to send, waiting, before the slots (and the close)."""
        wire = self._wire
        while self.closing is None:
            batch = self._take()
            if batch is None:
                return None
            for n, frame in enumerate(batch):
                if not wire.write(frame):
                    return batch[n:]
        return ()

    async def _flush(self, rest: Sequence[TextFrame]) -> None:
        try:
            for frame in rest:
                await self._send(frame)
            while self.closing is None:
                batch = self._take()
                if batch is None:
                    return
                for frame in batch:
                    await self._send(frame)
            code, reason, last_words = self.closing
            if last_words is not None:
                await self._send(last_words)
            await self._timed(self._wire.close(code, reason))
        except Exception:
            return  # the connection is gone; its reader sees the disconnect
        finally:
            self._flusher = None

    def _take(self) -> Sequence[TextFrame] | None:
        if self.notice is not None:
            notice, self.notice = self.notice, None
            return (notice,)
        board = self.board
        if board is not None:
            self.shown, self.board = self.target, None
        return board

    async def _send(self, frame: TextFrame) -> None:
        if not self._wire.write(frame):
            await self._timed(self._wire.send(frame))

    async def _timed(self, sending: Awaitable[None]) -> None:
        """Await a send, keeping `sending_since` for the hub's sweep (the reader's reply and
        the sender may both be waiting on a socket that does not drain)."""
        if not self._inflight:
            self.sending_since = self._loop.time()
        self._inflight += 1
        try:
            await sending
        finally:
            self._inflight -= 1
            if not self._inflight:
                self.sending_since = None

    async def wait_sent(self) -> None:
        """Until the sender is idle (tests; shutdown)."""
        while self._flusher is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._flusher)


@types.coroutine
def _resume(coroutine: Coroutine[Any, Any, None], waiting: Any) -> Generator[Any, None, None]:
    """Drive a coroutine that was started outside any task and is waiting on `waiting` (what it
    yielded) to its end, as a task would: the futures it waits on are passed to the task
    running this, and what is thrown in (a cancellation) is passed to it."""
    while True:
        try:
            yield waiting
        except BaseException as exc:
            step: Callable[[], Any] = functools.partial(coroutine.throw, exc)
        else:
            step = functools.partial(coroutine.send, None)
        try:
            waiting = step()
        except StopIteration:
            return
