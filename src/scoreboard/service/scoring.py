"""Recording score events: the server decides the points, the store commits, then the board
is told. Rate limits and idempotency live here, so every route that scores shares them.

Two limits per user, both charged by every scoring route before anything is written: the
number of events (`score_limit`) and the points they award (`points_limit`, charged with the
event's points), so that the most a user can gain per minute is the same whichever route
they use, including routes that let the client choose an increment. Both are charged in one
limiter call, atomically: a request refused by either limit writes nothing and is counted by
neither (a replay is counted like the request it repeats). A
lifecycle-only action (see `domain.catalogue`) is refused unless it comes with its action.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache

import orjson

from scoreboard.domain.boards import View
from scoreboard.domain.catalogue import Catalogue
from scoreboard.domain.errors import (
    DomainError,
    Forbidden,
    IdempotencyConflict,
    RateLimited,
    ServiceUnavailable,
    Unauthenticated,
    ValidationFailed,
)
from scoreboard.realtime.base import Charge, RateLimiter
from scoreboard.service.committer import Committed, GroupCommitter
from scoreboard.service.leaderboard import LeaderboardService
from scoreboard.service.limits import enforce_all, points_budget
from scoreboard.service.targets import OnBoard
from scoreboard.store.base import EventRecord, Outcome, ScoreCommand

log = logging.getLogger(__name__)

MAX_KEY_LENGTH = 255
# The action type of an admin's adjustment: in no catalogue, so on no board filtering actions.
ADJUSTMENT = "ADJUSTMENT"

# `on_recorded(user_id, at_us, points, client)`: every event `record` committed (not replays),
# with the client address it came from (None: not given); it must not wait or raise (the
# anomaly rules' queue, `service.rules.RuleEvaluator.committed`).
RecordedHook = Callable[[str, int, int, str | None], None]

# `on_event(action, outcome)`: every `record` answer, once. `action` is the catalogue's action
# type, "unknown" for one the catalogue does not know (a client's string never becomes a
# label); `outcome` is recorded | replayed | conflict | rate_limited | unavailable | refused
# (any other refusal: validation, a lifecycle-only action, the user gone).
EventHook = Callable[[str, str], None]


def _outcome(error: DomainError) -> str:
    if isinstance(error, IdempotencyConflict):
        return "conflict"
    if isinstance(error, RateLimited):
        return "rate_limited"
    if isinstance(error, ServiceUnavailable):
        return "unavailable"
    return "refused"


@dataclass(frozen=True, slots=True)
class ScoreResult:
    event: EventRecord
    rank: int | None
    replayed: bool
    previous_rank: int | None = None  # only from `record_moving`
    boards: tuple[OnBoard, ...] = ()  # the user's standing on every board the event counts on

    @property
    def previous_score(self) -> int:
        return self.event.new_score - self.event.points

    @property
    def rank_change(self) -> int:
        """Places gained (positive) or lost; 0 when either side is unranked (a first score)."""
        if self.previous_rank is None or self.rank is None:
            return 0
        return self.previous_rank - self.rank


@lru_cache(maxsize=4096)  # few distinct inputs (an action type and its points): 0.6 → 0.1 µs
def request_hash(action_type: str, points: int, client_increment: bool) -> str:
    """What makes two requests 'the same' for an idempotency key."""
    body = {"action_type": action_type, "points": points, "client_increment": client_increment}
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def check_idempotency_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not (1 <= len(key) <= MAX_KEY_LENGTH) or not key.isprintable():
        raise ValidationFailed(
            f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable characters.",
            details={"field": "Idempotency-Key"},
        )
    return key


class ScoringService:
    def __init__(
        self,
        committer: GroupCommitter,
        board: LeaderboardService,
        catalogue: Catalogue,
        limiter: RateLimiter,
        score_limit: str,
        points_limit: str = "",
        on_event: EventHook | None = None,
        on_recorded: RecordedHook | None = None,
    ) -> None:
        self._on_event = on_event
        self._on_recorded = on_recorded
        self._known = frozenset(rule.action_type for rule in catalogue.rules())
        self._committer = committer
        self._board = board
        self._catalogue = catalogue
        self._limiter = limiter
        self._limit = score_limit
        self.points_limit = points_budget(points_limit, score_limit, catalogue.max_points)
        self._messages = (
            "Too many score updates; slow down.",
            f"Too many points at once (limit {self.points_limit}); slow down.",
        )

    async def record_moving(
        self,
        user_id: str,
        action_type: str | None,
        *,
        idempotency_key: str | None = None,
        increment: int | None = None,
        client: str | None = None,
    ) -> ScoreResult:
        """`record`, also telling how far the user moved (`ScoreResult.rank_change`): their
        rank is read before the event, one more index read that only callers showing it pay."""
        before = await self._board.rank_of(user_id)
        result = await self.record(
            user_id,
            action_type,
            idempotency_key=idempotency_key,
            increment=increment,
            client=client,
        )
        return dataclasses.replace(result, previous_rank=before)

    async def record(
        self,
        user_id: str,
        action_type: str | None,
        *,
        idempotency_key: str | None = None,
        increment: int | None = None,
        action_id: str | None = None,
        source: str = "user",
        client: str | None = None,
    ) -> ScoreResult:
        """Validate, rate limit, commit (group commit) and publish one score event.

        `source` is kept on the event: "user" (the user's own token), "apikey:NAME" (a server
        write, `service.server_writes`), "admin:USER". It changes nothing else: the points,
        the user's idempotency keys and rate limits are the same whoever writes. `client`:
        the address the request came from, for the anomaly rules only (never stored)."""
        args = (user_id, action_type, idempotency_key, increment, action_id, source, client)
        if self._on_event is None:
            return await self._record(*args)
        key = self._catalogue.default_action_type if action_type is None else action_type
        label = key if key in self._known else "unknown"
        try:
            result = await self._record(*args)
        except DomainError as error:
            self._on_event(label, _outcome(error))
            raise
        self._on_event(label, "replayed" if result.replayed else "recorded")
        return result

    async def _record(
        self,
        user_id: str,
        action_type: str | None,
        idempotency_key: str | None,
        increment: int | None,
        action_id: str | None,
        source: str,
        client: str | None,
    ) -> ScoreResult:
        rule = self._catalogue.get(action_type)
        if action_id is None:
            rule.check_direct()
        points = self._catalogue.points_for(rule.action_type, increment)
        key = check_idempotency_key(idempotency_key)
        await self._charge(user_id, points)
        command = ScoreCommand(
            user_id=user_id,
            action_type=rule.action_type,
            points=points,
            idempotency_key=key,
            request_hash=request_hash(rule.action_type, points, increment is not None),
            at_us=self._board.clock(),
            action_id=action_id,
            source=source,
        )
        # The committer hands each committed batch to the board (one index update and one
        # change notice per batch) and answers with the rank the index gave.
        answer = await self._committer.submit(command)
        if answer.outcome is Outcome.CONFLICT:
            raise IdempotencyConflict()
        if answer.outcome is Outcome.BANNED:
            raise Forbidden("This account is banned: its score events are refused.")
        if answer.outcome is Outcome.USER_GONE or answer.event is None:
            raise Unauthenticated("The user of this token no longer exists.")
        if self._on_recorded is not None and answer.outcome is Outcome.RECORDED:
            self._on_recorded(user_id, command.at_us, points, client)
        return await self.answered(answer)

    async def adjust(self, user_id: str, points: int, source: str) -> Committed:
        """An admin's adjustment (`service.moderation`): `points` (either sign) for the user,
        no catalogue, no rate limit, counted on every board that counts all actions in the
        current period. The committer's answer (`answered` turns it into a result)."""
        command = ScoreCommand(
            user_id=user_id,
            action_type=ADJUSTMENT,
            points=points,
            at_us=self._board.clock(),
            source=source,
        )
        return await self._committer.submit(command)

    async def answered(self, answer: Committed) -> ScoreResult:
        """A recorded (or replayed) event's result: its ranks on every board it counts on."""
        assert answer.event is not None
        boards = await self._boards(answer)
        total = self._board.catalogue.total
        rank = next((b.rank for b in boards if total and b.scope == total.board_id), None)
        if rank is None:  # no total board, or neither the index nor the batch could tell
            rank = await self._rank_read(answer, self._board.rank_of(answer.event.user_id))
        return ScoreResult(answer.event, rank, answer.outcome is Outcome.REPLAYED, boards=boards)

    async def _rank_read(self, answer: Committed, read: Awaitable[int | None]) -> int | None:
        """A rank the answer reads itself. For an event this request recorded, a database
        that cannot answer in the request's budget leaves it null (the event is durably
        committed: a 503 would say it was not, and a retry without Idempotency-Key would
        count it twice); a replay's read fails as any read does."""
        if answer.outcome is not Outcome.RECORDED:
            return await read
        try:
            return await read
        except ServiceUnavailable as exc:
            log.warning("rank of a recorded event unknown (%s); answered null", exc)
            return None

    async def _boards(self, answer: Committed) -> tuple[OnBoard, ...]:
        """The user's score and rank on each board the event counted on: from the batch's
        index update, else (a replay, or a rank the index could not tell) read."""
        event = answer.event
        assert event is not None
        if answer.outcome is Outcome.REPLAYED:
            views = self._board.catalogue.counted(
                event.action_type, event.region, event.reached_at_us
            )
            return tuple(await self._board.on_views(event.user_id, views))
        found = []
        for on, rank in zip(event.boards, answer.ranks or (None,) * len(event.boards), strict=True):
            if rank is None:
                rank = await self._rank_read(answer, self._rank_on(event.user_id, on.view))
            found.append(OnBoard(on.view.board_id, on.view.period_id, on.standing.score, rank))
        return tuple(found)

    async def _rank_on(self, user_id: str, view: View) -> int | None:
        (read,) = await self._board.on_views(user_id, [view])
        return read.rank

    async def _charge(self, user_id: str, points: int) -> None:
        """Count one event and its points against the user's limits, both or neither, in one
        limiter call (`RateLimited` if either refuses)."""
        charges = (Charge("score", self._limit), Charge("points", self.points_limit, points))
        await enforce_all(self._limiter, charges, self._messages, "score", user_id)
