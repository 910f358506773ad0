"""The in-memory side of a `record_events` batch: the locked users' scores as the batch moves
them, its idempotency keys, and what each command will answer. No I/O here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from scoreboard.store.base import BoardStanding, EventRecord, Outcome, ScoreCommand, ScoreOutcome

if TYPE_CHECKING:
    from scoreboard.store.sql_boards import BoardFolds

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CONFLICT = ScoreOutcome(Outcome.CONFLICT)
USER_GONE = ScoreOutcome(Outcome.USER_GONE)
BANNED = ScoreOutcome(Outcome.BANNED)
CHUNK = 500  # rows per IN list: far below every bind-parameter limit

Pair = tuple[str, str]


def from_us(at_us: int) -> datetime:
    return EPOCH + timedelta(microseconds=at_us)


def to_us(at: datetime) -> int:
    return (at - EPOCH) // timedelta(microseconds=1)


def chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    return (items[i : i + CHUNK] for i in range(0, len(items), CHUNK))


@dataclass(slots=True)
class BatchUser:
    """A locked, active user of the batch and their score as the batch changes it."""

    display_name: str
    score: int
    reached_at_us: int
    version: int  # 0: no score row yet
    region: str | None = None  # as the locking SELECT read it: the region events count in
    touched: bool = False
    hidden: bool = False  # quarantined: recorded, but off the public boards


@dataclass(slots=True)
class NewEvent:
    """An event the batch records; `event_id` is known once the events are inserted."""

    command: ScoreCommand
    display_name: str
    new_score: int
    reached_at_us: int
    version: int
    at_us: int  # the event's time (the command's, or the batch's when it gave none)
    region: str | None
    boards: tuple[BoardStanding, ...] = ()
    event_id: int = 0
    hidden: bool = False

    def record(self, created_at: datetime, *, replay: bool = False) -> EventRecord:
        c = self.command
        return EventRecord(
            self.event_id,
            c.user_id,
            self.display_name,
            c.action_type,
            c.points,
            self.new_score,
            self.reached_at_us,
            self.version,
            created_at,
            self.region,
            () if replay else self.boards,
            self.hidden,
        )


@dataclass(slots=True)
class BatchKey:
    """An idempotency key of the batch: claimed now, or taken by an earlier transaction."""

    claimed: bool
    request_hash: str | None = None
    owner: EventRecord | NewEvent | None = None  # the event the key answers with


@dataclass(slots=True)
class Replay:
    """A command answered by an event recorded earlier in the same batch."""

    event: NewEvent


# What a command will answer: final already, or waiting for its event's id.
Plan = ScoreOutcome | NewEvent | Replay


@dataclass(slots=True)
class Batch:
    conn: sa.Connection
    now: datetime
    boards: BoardFolds
    users: dict[str, BatchUser] = field(default_factory=dict)
    keys: dict[Pair, BatchKey] = field(default_factory=dict)
    banned: set[str] = field(default_factory=set)  # locked, but their writes are refused

    @property
    def dialect(self) -> str:
        return self.conn.dialect.name

    def at_us(self, c: ScoreCommand) -> int:
        """The command's time; 0 means the batch's."""
        return c.at_us if c.at_us > 0 else to_us(self.now)


def outcome(plan: Plan, now: datetime) -> ScoreOutcome:
    """The command's answer, once the batch's events have their ids."""
    if isinstance(plan, NewEvent):
        return ScoreOutcome(Outcome.RECORDED, plan.record(now))
    if isinstance(plan, Replay):
        return ScoreOutcome(Outcome.REPLAYED, plan.event.record(now, replay=True))
    return plan


def replay(key: BatchKey, c: ScoreCommand) -> Plan:
    """A command whose key already answered a request: the same request replays, others
    conflict."""
    if key.owner is None or key.request_hash != c.request_hash:
        return CONFLICT
    if isinstance(key.owner, NewEvent):
        return Replay(key.owner)
    return ScoreOutcome(Outcome.REPLAYED, key.owner)
