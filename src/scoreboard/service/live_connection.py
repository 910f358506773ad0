"""One live connection: its subscriptions and the answers to its client frames.

Client frames (API.md sections 2 and 5), each answered before the next is read:
- `{"type": "ping"}` → `{"type": "pong", ...}`;
- `{"type": "subscribe", "scope", "limit"?, "period"?, "region"?}` → a `snapshot` of that
  board; the same (scope, period, region) again replaces its limit (a new snapshot); at most
  `MAX_SUBSCRIPTIONS` per connection (more: an error, the connection kept);
- `{"type": "unsubscribe", "scope", "period"?, "region"?}` → ends the matching subscriptions
  (leaving period or region out matches every one of the scope); no answer, even when
  nothing matched (unsubscribing is idempotent);
- anything else → an `error` with `VALIDATION_FAILED`.

Each subscription is one `Subscriber` of the hub on the connection's one wire; only one of
them gets keepalive pings. The token's expiry closes the whole connection (4401).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import orjson

from scoreboard.domain.errors import DomainError, Unauthenticated, ValidationFailed
from scoreboard.domain.times import now_rfc3339
from scoreboard.realtime.dialects import Dialect
from scoreboard.realtime.frames import TextFrame
from scoreboard.realtime.subscriber import CloseCode, Subscriber, Wire
from scoreboard.service.identity import Principal

if TYPE_CHECKING:
    from scoreboard.service.live import Live, Watch

MAX_SUBSCRIPTIONS = 16
SMALL_FRAME = 4096  # client frames are tiny control messages; larger ones are refused

Identity = tuple[str, str, str]  # scope, period, region


def error_frame(error: DomainError) -> str:
    detail: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.details:
        detail["details"] = error.details
    return orjson.dumps({"type": "error", "error": detail}).decode()


class Connection:
    # Slots, and each subscription's context manager held as is (no exit stack): a
    # connection's memory counts thousands of times over (docs/BENCH.md, memory per socket).
    __slots__ = ("_dialect", "_expiry", "_live", "_subs", "_wire")

    def __init__(
        self, live: Live, dialect: Dialect, wire: Wire, principal: Principal | None
    ) -> None:
        self._live = live
        self._dialect = dialect
        self._wire = wire
        self._subs: dict[Identity, tuple[AbstractAsyncContextManager[Subscriber], Subscriber]] = {}
        self._expiry: asyncio.TimerHandle | None = None
        if principal is not None:
            delay = max(0.0, principal.expires_at - time.time())
            self._expiry = asyncio.get_running_loop().call_later(delay, self._expired)

    @property
    def subscribers(self) -> list[Subscriber]:
        return [sub for _, sub in self._subs.values()]

    @property
    def abandoned(self) -> bool:
        """The hub gave up on this client (see `Subscriber.abandon`)."""
        return any(sub.abandoned for sub in self.subscribers)

    def _expired(self) -> None:
        error = TextFrame(error_frame(Unauthenticated("Authentication token expired.")))
        subs = self.subscribers
        if subs:
            subs[0].close(CloseCode.UNAUTHENTICATED, "Token expired.", error)

    # -- subscriptions -------------------------------------------------------------------------
    async def subscribe(self, watch: Watch) -> None:
        identity = (watch.scope, watch.period, watch.region)
        if identity not in self._subs and len(self._subs) >= MAX_SUBSCRIPTIONS:
            raise ValidationFailed(
                f"At most {MAX_SUBSCRIPTIONS} subscriptions per connection.",
                details={"field": "scope"},
            )
        await self._end(identity)
        dialect = self._live.dialect_for(self._dialect, watch)
        held = self._live.hub.subscription(watch.key, watch.limit, dialect, self._wire)
        sub = await held.__aenter__()
        sub.pinged = not self._subs
        self._subs[identity] = (held, sub)

    async def unsubscribe(self, scope: str, period: str | None, region: str | None) -> None:
        for identity in list(self._subs):
            s, p, r = identity
            if s == scope and period in (None, p) and region in (None, r):
                await self._end(identity)

    async def _end(self, identity: Identity) -> None:
        held = self._subs.pop(identity, None)
        if held is None:
            return
        manager, sub = held
        await manager.__aexit__(None, None, None)
        if sub.pinged and self._subs:
            next(iter(self._subs.values()))[1].pinged = True

    async def close(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        for identity in list(self._subs):
            with contextlib.suppress(Exception):
                await self._end(identity)

    # -- client frames -------------------------------------------------------------------------
    def too_big(self) -> None:
        """A frame over the hard limit: close 1009."""
        subs = self.subscribers
        if subs:
            subs[0].close(CloseCode.MESSAGE_TOO_BIG, "Frame too large.")

    async def handle(self, data: str) -> None:
        """Answer one client frame (see the module docstring)."""
        answer = await self._answer(data)
        subs = self.subscribers
        if answer is not None and subs:
            await subs[0].reply(answer)
        elif answer is not None:
            await self._wire.send(TextFrame(answer))

    async def _answer(self, data: str) -> str | None:
        if len(data) > SMALL_FRAME:
            return error_frame(ValidationFailed(f"Frames are limited to {SMALL_FRAME} bytes."))
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError:
            return error_frame(ValidationFailed("Frames must be JSON."))
        kind = message.get("type") if isinstance(message, dict) else None
        try:
            if kind == "ping":
                return orjson.dumps({"type": "pong", "timestamp": now_rfc3339()}).decode()
            if kind == "subscribe":
                watch = self._live.watch(
                    message.get("scope", "global"),
                    message.get("limit", 10),
                    message.get("period"),
                    message.get("region"),
                )
                await self.subscribe(watch)
                return None
            if kind == "unsubscribe":
                scope = message.get("scope")
                period, region = message.get("period"), message.get("region")
                if not all(isinstance(v, (str, type(None))) for v in (scope, period, region)):
                    raise ValidationFailed("scope, period and region must be strings.")
                if not isinstance(scope, str):
                    raise ValidationFailed("unsubscribe needs a scope.", details={"field": "scope"})
                await self.unsubscribe(scope, period, region)
                return None
        except DomainError as error:
            return error_frame(error)
        return error_frame(
            ValidationFailed("Unknown message type; known: ping, subscribe, unsubscribe.")
        )
