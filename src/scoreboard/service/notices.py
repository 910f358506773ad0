"""Change notices: "this board changed" told to every process through the broker.

One owner of publishing. Notices are coalesced: at most one publish in flight per process, and
the scopes changed meanwhile go out together after it. A notice that fails stays pending and
is tried again with backoff, so no process's clients miss a change once the broker is back.
Notices are idempotent ("scope changed", never a delta), which is what makes merging safe.
Each carries `at`, the wall-clock time (Unix seconds) of the earliest commit it tells of, for
the hubs' fan-out latency (`scoreboard_fanout_seconds`); a hub ignores a notice without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import orjson

from scoreboard.aio import resume_cancel
from scoreboard.realtime.base import Broker

log = logging.getLogger(__name__)


def encode_notice(scope: str, at: float) -> bytes:
    """The one notice format: `{"type": "changed", "scope": <view key>, "at": <seconds>}`."""
    return orjson.dumps({"type": "changed", "scope": scope, "at": at})


def decode_notice(data: bytes) -> tuple[str, float | None] | None:
    """(view key, `at` when given) of a notice; None for anything else (logged)."""
    try:
        notice = orjson.loads(data)
        scope = notice.get("scope")
    except (orjson.JSONDecodeError, AttributeError):
        scope = None
    if not isinstance(scope, str):
        log.warning("ignoring a malformed change notice %r", data[:100])
        return None
    at = notice.get("at")
    return scope, at if type(at) is float else None


class ChangeNotices:
    """Publishes change notices from one task (`start`); before it runs, each is sent at once."""

    def __init__(self, broker: Broker, on_failed: Callable[[], None] | None = None) -> None:
        """`on_failed()`: each publish the broker could not take (metrics)."""
        self._broker = broker
        self._on_failed = on_failed
        self._pending: dict[str, float] = {}  # scope -> its earliest commit not yet told
        self._wake = asyncio.Event()
        self._publisher: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._publisher = asyncio.create_task(self._publish_loop(), name="board-publisher")

    async def close(self) -> None:
        if self._publisher is not None:
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher
            self._publisher = None

    async def publish(self, scope: str) -> None:
        """Tell every process that `scope` changed. Never raises."""
        if self._publisher is not None and not self._publisher.done():
            self._pending.setdefault(scope, time.time())
            self._wake.set()
            return
        await self._publish(scope, time.time())  # not started (tools, tests): once, best effort

    async def _publish(self, scope: str, at: float) -> bool:
        try:
            published = await self._broker.publish(encode_notice(scope, at))
        except Exception:
            log.exception("publish of a change notice failed")
            published = False
        if not published and self._on_failed is not None:
            self._on_failed()
        return published

    async def _publish_loop(self) -> None:
        """Send pending notices; one that fails is tried again after a delay (0.1 s doubling
        to 2 s), or with the next change."""
        delay = 0.0
        while True:
            if delay:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
            else:
                await self._wake.wait()
            self._wake.clear()
            scopes, self._pending = self._pending, {}
            failed = {s: at for s, at in scopes.items() if not await self._publish(s, at)}
            resume_cancel()
            if failed:
                self._pending = failed | self._pending
                delay = min(2.0, max(0.1, delay * 2))
            else:
                delay = 0.0
