"""Anomaly rules, evaluated off the write path (API.md section 6, docs/RULES.md).

Contract:
- The write path only offers: `committed` (a recorded score event, with the client address
  it came from) and `too_fast` (a completion refused by `min_duration_seconds`) put an item
  on a bounded in-process queue and return; they never wait, never raise. A full queue
  drops the item and counts it (`on_dropped`): flagging never slows or fails a write.
- One background task per process (`start`/`close`, the app's lifespan) takes what is
  queued (up to `BATCH` items), tallies it in the store (`FlagStore.tally_activity`: the
  user's points in the sliding minute, the accounts seen at the address in the hour), asks
  `domain.rules` what tripped and writes those flags (`FlagStore.add_flags`: at most one per
  user, rule and window, with its `user.flagged` webhook in the same transaction). A batch
  whose evaluation fails is logged and counted (`on_failed`), not retried: the next events
  are evaluated against everything committed, so a rule still trips on them.
- The client address is never stored nor logged: the store sees an HMAC-SHA256 of it keyed
  with a key derived from the service secret (`address_hash`); a flag's detail carries the
  first 12 hex digits of that hash (`address_id`), which lets an admin tell that two flags
  came from one address and nothing more.
- `auto_quarantine`: each flag written is then handed to `quarantine` (the moderation
  service, `ModerationService.quarantine_flagged`).
- At close, items still queued are dropped (not counted: the process is stopping).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from scoreboard.aio import stop_task
from scoreboard.domain import rules as r
from scoreboard.domain.rules import Rules, Trip
from scoreboard.service.targets import Clock
from scoreboard.store.flags import Activity, FlagRecord, FlagStore

log = logging.getLogger(__name__)

BATCH = 1024
# The evaluator waits this long after the first item before taking what is queued, so that at
# any rate it runs at most ~1/PACE_SECONDS store transactions a second (on SQLite they share
# the one write lock with the group committer): a flag comes this much later, no write waits.
PACE_SECONDS = 0.1
PRUNE_EVERY_SECONDS = 60.0
# Activity older than this is never read again (the longest window is an hour).
KEEP_US = 2 * r.HOUR_SECONDS * 1_000_000
ADDRESS_ID_CHARS = 12


def address_key(secret: str) -> bytes:
    """The key of the address hashes, derived from the service secret (never the secret
    itself, which signs tokens)."""
    return hmac.new(secret.encode(), b"scoreboard rules: client address", hashlib.sha256).digest()


def address_hash(key: bytes, address: str) -> str:
    return hmac.new(key, address.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class Scored:
    user_id: str
    at_us: int
    points: int
    address: str | None


@dataclass(frozen=True, slots=True)
class TooFast:
    user_id: str
    at_us: int
    action_id: str
    action_type: str
    elapsed_seconds: float
    min_duration_seconds: float


Item = Scored | TooFast


class RuleEvaluator:
    def __init__(
        self,
        store: FlagStore,
        rules: Rules,
        key: bytes,
        clock: Clock,
        *,
        queue_size: int,
        webhook_type: str | None = None,
        quarantine: Callable[[FlagRecord], Awaitable[bool]] | None = None,
        on_flag: Callable[[str], None] = lambda rule: None,
        on_dropped: Callable[[], None] = lambda: None,
        on_failed: Callable[[int], None] = lambda items: None,
    ) -> None:
        """`webhook_type`: the webhook each flag enqueues (None: webhooks are off).
        `quarantine`: called with each flag written when `rules.auto_quarantine`."""
        self.rules = rules
        self._store = store
        self._key = key
        self._clock = clock
        self._queue: asyncio.Queue[Item] = asyncio.Queue(queue_size)
        self._webhook_type = webhook_type
        self._quarantine = quarantine if rules.auto_quarantine else None
        self._on_flag = on_flag
        self._on_dropped = on_dropped
        self._on_failed = on_failed
        self._task: asyncio.Task[None] | None = None
        self._pruned_at = time.monotonic()
        self._evaluating = 0
        # (user, rule, window) keys this process already wrote or found written: not sent to
        # the store again (the store's unique key stays the guarantee across processes).
        # Cleared with every prune, so it holds at most a minute's worth.
        self._known: set[tuple[str, str, str]] = set()

    @property
    def pending(self) -> int:
        """Items queued or being evaluated (0: everything offered so far was evaluated,
        failed or dropped)."""
        return self._queue.qsize() + self._evaluating

    # -- the write path's side: never waits, never raises --------------------------------------
    def committed(self, user_id: str, at_us: int, points: int, address: str | None) -> None:
        """A recorded score event (`address`: the client's; None, or the API's "unknown",
        when there is none: then only the points rule reads the event)."""
        known = None if address in (None, "unknown", "") else address
        self._offer(Scored(user_id, at_us, points, known))

    def too_fast(
        self,
        user_id: str,
        action_id: str,
        action_type: str,
        elapsed_seconds: float,
        min_duration_seconds: float,
    ) -> None:
        """A completion refused for coming sooner than `min_duration_seconds`."""
        if self.rules.min_action_duration:
            item = TooFast(
                user_id,
                self._clock(),
                action_id,
                action_type,
                elapsed_seconds,
                min_duration_seconds,
            )
            self._offer(item)

    def _offer(self, item: Item) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self._on_dropped()

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="rules")

    async def close(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            items = [await self._queue.get()]
            self._evaluating = 1
            await asyncio.sleep(PACE_SECONDS)
            while len(items) < BATCH and not self._queue.empty():
                items.append(self._queue.get_nowait())
            self._evaluating = len(items)
            try:
                await self.evaluate(items)
            except Exception:  # ServiceUnavailable included: logged by the store
                log.warning("rules: evaluating %d events failed", len(items), exc_info=True)
                self._on_failed(len(items))
            finally:
                self._evaluating = 0
            await self._prune()

    # -- evaluation ----------------------------------------------------------------------------
    async def evaluate(self, items: list[Item]) -> list[FlagRecord]:
        """Tally `items`, write the flags they trip; the flags written (not those that a
        (user, rule, window) had already)."""
        scored = [item for item in items if isinstance(item, Scored)]
        hashes = [
            None if item.address is None else address_hash(self._key, item.address)
            for item in scored
        ]
        activities = [
            Activity(item.user_id, item.at_us, item.points, digest)
            for item, digest in zip(scored, hashes, strict=True)
        ]
        tallies = await self._store.tally_activity(activities)
        trips: list[Trip | None] = []
        for item, digest, tally in zip(scored, hashes, tallies, strict=True):
            trips.append(
                r.points_trip(self.rules, item.user_id, item.at_us, tally.points_in_minute)
            )
            if digest is not None and tally.accounts is not None:
                trips.append(
                    r.address_trip(
                        self.rules,
                        item.user_id,
                        item.at_us,
                        tally.accounts,
                        digest[:ADDRESS_ID_CHARS],
                    )
                )
        for fast in items:
            if isinstance(fast, TooFast):
                trips.append(
                    r.duration_trip(
                        self.rules,
                        fast.user_id,
                        fast.at_us,
                        action_id=fast.action_id,
                        action_type=fast.action_type,
                        elapsed_seconds=fast.elapsed_seconds,
                        min_duration_seconds=fast.min_duration_seconds,
                    )
                )
        # One trip per (user, rule, window) of the batch: the first, as the store keeps it.
        unique: dict[tuple[str, str, str], Trip] = {}
        for trip in trips:
            if trip is not None:
                key = (trip.user_id, trip.rule, trip.window)
                if key not in self._known:
                    unique.setdefault(key, trip)
        written = await self._store.add_flags(
            list(unique.values()), webhook_type=self._webhook_type
        )
        self._known.update(unique)
        for flag in written:
            self._on_flag(flag.rule)
            log.info("rules: user %s flagged (%s, flag %d)", flag.user_id, flag.rule, flag.flag_id)
        if self._quarantine is not None:
            for flag in written:
                try:
                    await self._quarantine(flag)
                except Exception:  # the flag stays open: an admin sees it
                    log.warning("rules: quarantining %s failed", flag.user_id, exc_info=True)
        return written

    async def _prune(self) -> None:
        if time.monotonic() - self._pruned_at < PRUNE_EVERY_SECONDS:
            return
        self._pruned_at = time.monotonic()
        self._known.clear()
        try:
            await self._store.prune_rule_activity(self._clock() - KEEP_US)
        except Exception:
            log.warning("rules: pruning old activity failed", exc_info=True)
