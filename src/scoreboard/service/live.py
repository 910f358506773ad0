"""The live path, one owner: what a live connection may watch, and how changes reach it.

- Broker callbacks (`on_message`, `on_resync`): a change notice (format: `service.notices`)
  names a view (`weekly:2026-W49:eu`); it invalidates that view's cached top and marks dirty
  every hub key that shows it: the view itself, and `weekly:current:eu` (or `previous`) while
  2026-W49 is the board's current (previous) period.
- Hub keys are `View` keys whose period is what the client asked for: `current`, `previous`
  or an id. The hub's reads (`top`) resolve it at read time, so a subscription to `current`
  follows the board into each new period.
- Resets (`reset_due`): when a board's current period changes, every client of that board's
  `current` and `previous` keys gets a snapshot of the new period. Periods are a function of
  the clock (`domain.boards`), so this checks the clock at each board's next reset instant
  (and at least every second): a reset cannot be missed, and a test moves the clock instead
  of sleeping.
- Connections (`connection`): the auth policy (a token required unless configured
  otherwise), the parameter rules of a subscription and the dialect lookup; a connection's
  client frames (`subscribe`, `unsubscribe`, `ping`) are `service.live_connection`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from scoreboard.domain.boards import View, to_us
from scoreboard.domain.errors import DomainError, Forbidden, Unauthenticated, ValidationFailed
from scoreboard.domain.ranking import RankedEntry
from scoreboard.realtime.dialects import CanonicalDialect, Dialect, DialectRegistry
from scoreboard.realtime.hub import Hub
from scoreboard.realtime.subscriber import CloseCode, Wire
from scoreboard.service.identity import Principal
from scoreboard.service.leaderboard import LeaderboardService
from scoreboard.service.live_connection import Connection
from scoreboard.service.notices import decode_notice
from scoreboard.service.targets import MAX_LIMIT, check_range

log = logging.getLogger(__name__)

RELATIVE = ("current", "previous")


class Refused(Exception):
    """A connection refused before it was accepted: the error frame and the close code."""

    def __init__(self, error: DomainError, code: int) -> None:
        super().__init__(error.message)
        self.error = error
        self.code = code


@dataclass(frozen=True, slots=True)
class Watch:
    """One subscription's board: the hub key it is served under, and its identity."""

    scope: str
    period: str  # current | previous | an id
    region: str
    limit: int

    @property
    def key(self) -> str:
        return View(self.scope, self.period, self.region).key


class Live:
    def __init__(
        self,
        board: LeaderboardService,
        hub: Hub,
        dialects: DialectRegistry,
        authenticate: Callable[[str], Awaitable[Principal]],
        *,
        require_auth: bool = True,
    ) -> None:
        self._board = board
        self._hub = hub
        self._dialects = dialects
        self._authenticate = authenticate
        self._require_auth = require_auth
        self._tagged: dict[str, Dialect] = {}
        now = board.clock()
        self._current = {b.board_id: b.period_id_at(now) for b in board.catalogue}
        self._resets: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self._resets = asyncio.create_task(self._watch_resets(), name="live-resets")

    async def close(self) -> None:
        if self._resets is not None:
            self._resets.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._resets
            self._resets = None

    # -- broker callbacks ----------------------------------------------------------------------
    async def on_message(self, data: bytes) -> None:
        notice = decode_notice(data)
        if notice is None:
            return
        key, at = notice
        self._board.changed_elsewhere(key)
        for hub_key in self._shown_under(key):
            self._hub.mark_dirty(hub_key, at)

    async def on_resync(self) -> None:
        """The broker reconnected: notices may have been lost."""
        self._board.resynced()
        await self._hub.on_resync()

    def _shown_under(self, key: str) -> list[str]:
        try:
            view = View.from_key(key)
            board = self._board.catalogue.get(view.board_id)
        except (ValueError, DomainError):
            return [key]
        keys = [key]
        now = self._board.clock()
        for relative in RELATIVE:
            try:
                if board.resolve(relative, now).id == view.period_id:
                    keys.append(View(view.board_id, relative, view.region).key)
            except ValidationFailed:  # an all-time board has no previous period
                continue
        return keys

    # -- what the hub reads --------------------------------------------------------------------
    def _resolve(self, hub_key: str) -> tuple[View, dict[str, object]]:
        asked = View.from_key(hub_key)
        target = self._board.target(asked.board_id, asked.period_id, asked.region or None)
        return target.view, target.head()

    async def top(self, hub_key: str, limit: int) -> list[RankedEntry]:
        """The hub's `TopSource`: the board a hub key names, its period resolved now."""
        view, _ = self._resolve(hub_key)
        return await self._board.view_top(view, limit)

    def _dialect(self, dialect: Dialect, hub_key: str) -> Dialect:
        """Canonical messages carry scope, period and next reset; one dialect per hub key,
        so the hub still encodes each change once for all its clients."""
        if not isinstance(dialect, CanonicalDialect):
            return dialect
        tagged = self._tagged.get(hub_key)
        if tagged is None:

            def head() -> dict[str, object]:
                return self._resolve(hub_key)[1]

            tagged = self._tagged[hub_key] = dialect.tagged(head)
        return tagged

    # -- resets --------------------------------------------------------------------------------
    async def reset_due(self) -> list[str]:
        """Snapshot the new period to the clients of every board whose current period
        changed since the last check; returns those boards' ids."""
        now = self._board.clock()
        changed = []
        for board in self._board.catalogue:
            period = board.period_id_at(now)
            if self._current.get(board.board_id) != period:
                self._current[board.board_id] = period
                changed.append(board.board_id)
        if changed:
            ids = set(changed)

            def affected(hub_key: str) -> bool:
                view = View.from_key(hub_key)
                return view.board_id in ids and view.period_id in RELATIVE

            log.info("period reset of %s: new snapshots for their live clients", changed)
            await self._hub.resnapshot(affected)
        return changed

    async def _watch_resets(self) -> None:
        while True:
            now = self._board.clock()
            resets = [b.next_reset_at(now) for b in self._board.catalogue]
            soonest = min((r for r in resets if r is not None), default=None)
            wait = 1.0
            if soonest is not None:
                wait = min(1.0, max(0.0, (to_us(soonest) - now) / 1e6))
            await asyncio.sleep(wait)
            try:
                await self.reset_due()
            except Exception:
                log.exception("live: period reset failed; retrying")

    # -- connections ---------------------------------------------------------------------------
    def watch(
        self,
        scope: object,
        limit: object = 10,
        period: object = None,
        region: object = None,
    ) -> Watch:
        """The parameter rules of one subscription (query string or `subscribe` frame)."""
        if isinstance(limit, str):
            if not limit.isdigit() or len(limit) > 4:
                raise ValidationFailed("limit must be an integer.", details={"field": "limit"})
            limit = int(limit)
        if type(limit) is not int:
            raise ValidationFailed("limit must be an integer.", details={"field": "limit"})
        check_range("limit", limit, 1, MAX_LIMIT)
        for name, value in (("scope", scope), ("period", period), ("region", region)):
            if value is not None and (not isinstance(value, str) or len(value) > 64):
                raise ValidationFailed(f"{name} must be a short string.", details={"field": name})
        if not isinstance(scope, str):
            raise ValidationFailed("scope must be a board id.", details={"field": "scope"})
        assert period is None or isinstance(period, str)
        assert region is None or isinstance(region, str)
        target = self._board.target(scope, period, region)  # InvalidScope, ValidationFailed
        spec = "current" if period is None else period if period in RELATIVE else target.period.id
        return Watch(scope, spec, target.view.region, limit)

    @asynccontextmanager
    async def connection(
        self,
        token: str | None,
        query: Mapping[str, str],
        default_format: str,
        wire: Wire,
        accept: Callable[[], Awaitable[None]],
    ) -> AsyncIterator[Connection]:
        """A live connection for the duration of the block, subscribed to the board its query
        names. Before `accept` is called, a refusal raises `Refused`. Enter it from the
        connection's reader task (the hub may cancel that task to abandon a client)."""
        principal = await self._admit(token)
        try:
            dialect = self._dialects.get(query.get("format", default_format))
            if dialect is None:
                names = ", ".join(self._dialects.names())
                raise ValidationFailed(
                    f"Unknown format; known: {names}.", details={"field": "format"}
                )
            first = self.watch(
                query.get("scope", "global"),
                query.get("limit", "10"),
                query.get("period"),
                query.get("region"),
            )
        except DomainError as exc:
            raise Refused(exc, CloseCode.POLICY_VIOLATION) from None
        await accept()
        connection = Connection(self, dialect, wire, principal)
        try:
            await connection.subscribe(first)
            yield connection
        finally:
            await connection.close()

    async def _admit(self, token: str | None) -> Principal | None:
        if token is None:
            if self._require_auth:
                raise Refused(
                    Unauthenticated("A token is required: ?token=, Authorization or subprotocol."),
                    CloseCode.UNAUTHENTICATED,
                )
            return None
        try:
            return await self._authenticate(token)
        except Unauthenticated as exc:
            raise Refused(exc, CloseCode.UNAUTHENTICATED) from None
        except Forbidden as exc:  # a banned account: reconnecting as is cannot help
            raise Refused(exc, CloseCode.POLICY_VIOLATION) from None
        except DomainError as exc:  # the account could not be looked up: come back later
            raise Refused(exc, CloseCode.TRY_AGAIN_LATER) from None

    @property
    def hub(self) -> Hub:
        return self._hub

    def dialect_for(self, dialect: Dialect, watch: Watch) -> Dialect:
        return self._dialect(dialect, watch.key)
