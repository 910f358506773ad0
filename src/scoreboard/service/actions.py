"""The action lifecycle (specification 001): start an action, then complete or cancel it.

Rules, all here so every route shares them:
- Only the owner acts on their actions: a path user other than the caller, or an action of
  another user, is `Forbidden`; an unknown action is `NotFound`; one already completed or
  cancelled is `ActionNotOpen`.
- Points come from the catalogue, for the type the action was started with, and are awarded
  exactly once: completion goes through `ScoringService.record(..., action_id=...)`, so the
  store marks the action completed in the same transaction as the event and the new total (a
  second completion, even a concurrent one, finds the action no longer open). Completion is
  therefore rate limited, group-committed and published like every other score event.
- A completion sooner than the type's `min_duration_seconds` after the start is refused
  (`ValidationFailed`) and the action is flagged `suspicious` for the audit; it stays open, so
  an honest client that was merely early can complete it later.
- An action open longer than `max_open_seconds` has expired: completing it cancels it and
  answers `ActionNotOpen`.
- Starting an action is rate limited by the score limit, on its own counter, so a client cannot
  fill the table with open actions.
- A lifecycle-only type (a `min_duration_seconds`) has at most one open action per user: a
  start cancels the user's older open action of that type (a client that lost its action id
  is not stuck), so starting many in parallel cannot multiply what the duration allows, and
  completing a superseded one answers `ActionNotOpen`. Other types may be open side by side:
  they are directly scorable anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scoreboard.domain.catalogue import Catalogue
from scoreboard.domain.errors import (
    ActionNotOpen,
    Forbidden,
    IdempotencyConflict,
    NotFound,
    ValidationFailed,
)
from scoreboard.domain.times import utcnow
from scoreboard.realtime.base import RateLimiter
from scoreboard.service.leaderboard import LeaderboardService
from scoreboard.service.limits import enforce
from scoreboard.service.scoring import ScoringService
from scoreboard.store.base import ActionRecord, Store

Clock = Callable[[], datetime]
# `too_fast(user_id, action_id, action_type, elapsed_seconds, min_duration_seconds)`: a
# completion refused by the minimum duration; must not wait or raise (the anomaly rules'
# queue, `service.rules.RuleEvaluator.too_fast`).
TooFastHook = Callable[[str, str, str, float, float], None]


@dataclass(frozen=True, slots=True)
class ActionResult:
    """An action after a completion or cancellation, with the owner's total afterwards."""

    action: ActionRecord
    awarded_points: int
    total_score: int
    rank: int | None


class ActionService:
    def __init__(
        self,
        store: Store,
        scoring: ScoringService,
        board: LeaderboardService,
        catalogue: Catalogue,
        limiter: RateLimiter,
        start_limit: str,
        *,
        clock: Clock = utcnow,
        on_too_fast: TooFastHook | None = None,
    ) -> None:
        self._on_too_fast = on_too_fast
        self._store = store
        self._scoring = scoring
        self._board = board
        self._catalogue = catalogue
        self._limiter = limiter
        self._start_limit = start_limit
        self._clock = clock

    async def start(
        self,
        caller: str,
        owner: str,
        action_type: str | None,
        metadata: Mapping[str, Any] | None = None,
    ) -> ActionRecord:
        """Open an action of `action_type` (the catalogue's default when None) for `owner`."""
        _check_owner(caller, owner)
        rule = self._catalogue.get(action_type)
        message = "Too many actions started; slow down."
        await enforce(self._limiter, self._start_limit, "action-start", owner, message=message)
        return await self._store.start_action(
            owner, rule.action_type, metadata, self._clock(), supersede=rule.lifecycle_only
        )

    async def complete(
        self, caller: str, owner: str, action_id: str, *, client: str | None = None
    ) -> ActionResult:
        """Award the action's catalogue points, once, and mark it completed atomically
        (`client`: the request's address, for the anomaly rules)."""
        action = await self._open_action(caller, owner, action_id)
        rule = self._catalogue.get(action.action_type)
        elapsed = (self._clock() - action.started_at).total_seconds()
        if elapsed > rule.max_open_seconds:
            await self._store.cancel_action(action_id, self._clock())
            raise ActionNotOpen(
                f"The action expired: it was open longer than {rule.max_open_seconds:g} s."
            )
        if elapsed < rule.min_duration_seconds:
            await self._store.mark_suspicious(action_id)
            if self._on_too_fast is not None:
                self._on_too_fast(
                    owner, action_id, rule.action_type, elapsed, rule.min_duration_seconds
                )
            raise ValidationFailed(
                f"{rule.action_type} cannot be completed within "
                f"{rule.min_duration_seconds:g} s of its start.",
                details={"field": "duration", "min_duration_seconds": rule.min_duration_seconds},
            )
        try:
            result = await self._scoring.record(
                owner, rule.action_type, action_id=action_id, client=client
            )
        except IdempotencyConflict:
            # Without a key, the store's only conflict is "no longer open": a racing completion
            # or cancellation won.
            raise ActionNotOpen() from None
        done = await self._store.get_action(action_id)
        event = result.event
        return ActionResult(done or action, event.points, event.new_score, result.rank)

    async def cancel(self, caller: str, owner: str, action_id: str) -> ActionResult:
        """Close the action without points."""
        await self._open_action(caller, owner, action_id)
        cancelled = await self._store.cancel_action(action_id, self._clock())
        if cancelled is None:
            raise ActionNotOpen()
        found = await self._board.score_and_rank(owner)
        score, rank = found if found is not None else (0, None)
        return ActionResult(cancelled, 0, score, rank)

    async def _open_action(self, caller: str, owner: str, action_id: str) -> ActionRecord:
        _check_owner(caller, owner)
        action = await self._store.get_action(action_id)
        if action is None:
            raise NotFound("No such action.")
        if action.user_id != owner:
            raise Forbidden("That action belongs to another user.")
        if not action.open:
            raise ActionNotOpen(f"The action is already {action.status}.")
        return action


def _check_owner(caller: str, owner: str) -> None:
    if caller != owner:
        raise Forbidden("You may only act on your own actions.")
