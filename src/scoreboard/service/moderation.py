"""Moderation (API.md section 6): ban, unban, quarantine, release, and the admin's view of a
user. Each action changes the user's status in the store, then every board follows at once
(the user leaves, or comes back to, every recent view their events counted on, in every
process: `LeaderboardService.removed` / `restored`), then the action is appended to the admin
audit log (`audit`).

Rules (decisions, docs/MODERATION.md):
- ban: the user leaves every board and their writes get 403 `FORBIDDEN` (refused in the very
  batch that would record them: `Outcome.BANNED`); their events stay in the log.
- quarantine: hidden from every public board; their writes are still accepted (201), and
  their own `/leaderboard/me` and event answers show their standing as if they were visible.
- unban only a banned user, release only a quarantined one (else 409 `CONFLICT`); banning a
  banned user or quarantining a quarantined one again changes nothing and is still audited.
- A ban replaces a quarantine (and the other way round): one status at a time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from scoreboard.domain.errors import ModerationConflict, NotFound, ValidationFailed
from scoreboard.service.leaderboard import LeaderboardService
from scoreboard.service.scoring import ScoreResult, ScoringService
from scoreboard.service.targets import OnBoard
from scoreboard.service.webhooks import USER_BANNED
from scoreboard.store.base import AuditEntry, EventRecord, Outcome, Store, UserRecord
from scoreboard.store.flags import FlagRecord, StatusChange

MAX_REASON = 500
MAX_ADJUST = 1_000_000
# The audit log's actor of what the anomaly rules do themselves (auto_quarantine).
RULES_ACTOR = "rules"

# `audit(actor, action, target, reason)`: append one line to the admin audit log.
Audit = Callable[[str, str, str, str], Awaitable[None]]

STATUS_OF = {"ban": "banned", "quarantine": "quarantined", "unban": "active", "release": "active"}
UNDOES = {"unban": "banned", "release": "quarantined"}


@dataclass(frozen=True, slots=True)
class UserView:
    user: UserRecord
    boards: list[OnBoard]
    open_flags: int = 0

    def body(self) -> dict[str, object]:
        return {
            "user_id": self.user.user_id,
            "username": self.user.username,
            "display_name": self.user.display_name,
            "status": self.user.status,
            "boards": [
                {"scope": b.scope, "period": b.period, "score": b.score, "rank": b.rank}
                for b in self.boards
            ],
            "open_flags": self.open_flags,
        }


def source_of(actor: str) -> str:
    """An event's `source` for an admin action: `apikey:NAME` stays, a user id becomes
    `admin:<user id>`."""
    return actor if actor.startswith("apikey:") else f"admin:{actor}"


def check_reason(reason: object) -> str:
    if not isinstance(reason, str) or not 1 <= len(reason.strip()) <= MAX_REASON:
        raise ValidationFailed(
            f"reason must be 1-{MAX_REASON} characters.", details={"field": "reason"}
        )
    return reason.strip()


class ModerationService:
    def __init__(
        self,
        store: Store,
        board: LeaderboardService,
        audit: Audit,
        scoring: ScoringService | None = None,
        *,
        webhooks: bool = False,
    ) -> None:
        """`audit` appends the actions that are not a status change (void, adjust; a status
        change is audited in its own transaction). `webhooks`: enqueue `user.banned`."""
        self._store = store
        self._board = board
        self._audit = audit
        self._scoring = scoring
        self._webhooks = webhooks

    async def adjust(self, actor: str, user_id: str, points: int, reason: str) -> ScoreResult:
        """Add `points` (non-zero, |points| <= 1,000,000) to the user's score on every board
        counting all actions, in the current period; the adjustment event's result."""
        reason = check_reason(reason)
        if type(points) is not int or points == 0 or abs(points) > MAX_ADJUST:
            raise ValidationFailed(
                f"points must be a non-zero integer within ±{MAX_ADJUST:,}.",
                details={"field": "points"},
            )
        assert self._scoring is not None, "adjust needs the scoring service"
        await self._user(user_id)
        answer = await self._scoring.adjust(user_id, points, source_of(actor))
        if answer.outcome is Outcome.BANNED:
            raise ModerationConflict("The user is banned: unban them first to adjust.")
        if answer.outcome is Outcome.CONFLICT:
            raise ValidationFailed("The score would leave the 64-bit range.")
        if answer.outcome is not Outcome.RECORDED or answer.event is None:
            raise NotFound("No such user.")
        result = await self._scoring.answered(answer)
        await self._audit(actor, "adjust", user_id, reason)
        return result

    async def act(self, actor: str, action: str, user_id: str, reason: str) -> UserView:
        """`action` one of ban, unban, quarantine, release, on `user_id`, by `actor` (an
        admin's user id or `apikey:NAME`); the user's view afterwards."""
        reason = check_reason(reason)
        status = STATUS_OF.get(action)
        if status is None:
            raise ValidationFailed(f"unknown moderation action {action!r}.")
        user = await self._user(user_id)
        undone = UNDOES.get(action)
        if undone is not None and user.status != undone:
            raise ModerationConflict(
                f"The user is {user.status}, not {undone}: nothing to {action}."
            )
        change = self.change(actor, action, user_id, reason)
        changed = await self._store.set_status(
            user_id, change.status, audit=change.audit, webhook=change.webhook
        )
        if changed is None:
            raise NotFound("No such user.")
        await self.follow(user_id, change.status)
        return await self.view(user_id)

    def change(self, actor: str, action: str, user_id: str, reason: str) -> StatusChange:
        """What `action` writes (status, audit line, webhook), for `act` and for a flag's
        resolution (`service.flags`, which writes it in the flag's transaction)."""
        webhook = None
        if action == "ban" and self._webhooks:
            webhook = (USER_BANNED, {"user_id": user_id, "reason": reason, "actor": actor})
        entry = AuditEntry(actor, action, user_id, reason)
        return StatusChange(user_id, STATUS_OF[action], entry, webhook)

    async def follow(self, user_id: str, status: str) -> None:
        """Every board follows a status change at once."""
        if status == "active":
            await self._board.restored(user_id)
        else:
            await self._board.removed(user_id)

    async def quarantine_flagged(self, flag: FlagRecord) -> bool:
        """`auto_quarantine` (docs/RULES.md): quarantine the flagged user, audited with the
        actor `rules`, unless they are not active (banned or quarantined already: the
        status is only changed from `active`, in the store). Whether it was changed."""
        reason = f"flag {flag.flag_id}: {flag.rule}"
        entry = AuditEntry(RULES_ACTOR, "quarantine", flag.user_id, reason)
        changed = await self._store.set_status(
            flag.user_id, "quarantined", audit=entry, expect="active"
        )
        if changed is None:
            return False
        await self.follow(flag.user_id, "quarantined")
        return True

    async def void(self, actor: str, event_id: int, reason: str) -> EventRecord:
        """Void an event (a compensating event; `Store.void_event`); every board it counted
        on follows at once. The compensating event."""
        reason = check_reason(reason)
        voided = await self._store.void_event(event_id, source_of(actor))
        event = voided.event
        if not event.hidden:  # a banned or quarantined user's rows come back on unban/release
            await self._board.recomputed(event.user_id, voided.boards, voided.left)
        await self._audit(actor, "void", str(event_id), reason)
        return event

    async def view(self, user_id: str) -> UserView:
        """The user's status and their standing on every view they have a row on (`rank` as
        the public boards show it: None while hidden)."""
        user = await self._user(user_id)
        boards = []
        for view in await self._store.views_of_user(user_id):
            total = self._board.catalogue.get(view.board_id).is_total
            row = await self._store.view_row(view, user_id, total)
            if row is None:
                continue
            entry = None
            if user.status == "active":
                entry = await self._board.reader(view).entry_of(user_id)
            rank = None if entry is None else entry.rank
            boards.append(OnBoard(view.board_id, view.period_id, row[0].score, rank))
        return UserView(user, boards, await self._store.open_flags_of(user_id))

    async def find(self, username: str) -> UserView:
        """The view of the user with exactly this username (`view`); a deleted one is not
        found."""
        user = await self._store.get_user_by_username(username)
        if user is None or not user.active:
            raise NotFound("No user with that username.")
        return await self.view(user.user_id)

    async def _user(self, user_id: str) -> UserRecord:
        user = await self._store.get_user(user_id)
        if user is None or not user.active:
            raise NotFound("No such user.")
        return user
