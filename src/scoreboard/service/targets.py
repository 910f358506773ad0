"""What a leaderboard read names and answers: a board, one period, one region (`Target`), and
the bodies built from it (`Page`, `MyStanding`, `OnBoard`); the bounds every read checks; the
clock periods are computed from.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from scoreboard.domain.boards import Board, Period, View
from scoreboard.domain.errors import ValidationFailed
from scoreboard.domain.ranking import RankedEntry
from scoreboard.domain.times import rfc3339

MAX_LIMIT = 100
MAX_AROUND = 50
MAX_FRIENDS = 1000
# Deeper pages are refused (400), not served empty: no board is near a billion users, and a
# bound keeps every offset well inside what SQL (int64) and Redis accept as an argument.
MAX_OFFSET = 1_000_000_000
DAY_US = 86_400_000_000

Clock = Callable[[], int]  # microseconds since the epoch


def system_clock() -> int:
    return time.time_ns() // 1000


def check_range(name: str, value: int, low: int, high: int | None = None) -> int:
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValidationFailed(f"{name} must be {bound}.", details={"field": name})
    return value


@dataclass(frozen=True, slots=True)
class Target:
    """What a read names: a board, one of its periods, one region; and when it was asked."""

    board: Board
    period: Period
    view: View
    now_us: int

    @property
    def scope(self) -> str:
        return self.board.board_id

    def head(self) -> dict[str, object]:
        """The members every leaderboard body carries: scope, period, next_reset_at."""
        reset = self.board.next_reset_at(self.now_us)
        return {
            "scope": self.scope,
            "period": self.period.as_dict(),
            "next_reset_at": None if reset is None else rfc3339(reset),
        }


@dataclass(frozen=True, slots=True)
class Page:
    target: Target
    limit: int
    offset: int
    total: int
    items: list[RankedEntry]
    generated_at: datetime

    @property
    def scope(self) -> str:
        return self.target.scope

    def body(self) -> dict[str, object]:
        return {
            **self.target.head(),
            "limit": self.limit,
            "offset": self.offset,
            "total": self.total,
            "items": [entry.as_dict() for entry in self.items],
            "generated_at": rfc3339(self.generated_at),
        }


@dataclass(frozen=True, slots=True)
class MyStanding:
    user_id: str
    display_name: str
    score: int
    rank: int | None
    around: list[RankedEntry]
    target: Target | None = None


@dataclass(frozen=True, slots=True)
class OnBoard:
    """A user's standing on one view, as a score event's answer lists it."""

    scope: str
    period: str
    score: int
    rank: int | None
