"""The board catalogue: which leaderboards exist, and the period an instant falls in.

A board (`Board`) ranks users by the points of the events it counts (`actions`, absent = all),
summed (`aggregate: sum`) or the single best event (`best`), over a time window: all time, or
the day, ISO week (Monday 00:00) or month in the board's timezone. A board with
`partition: "region"` ranks each region apart; an event counts toward the region its user had
when it was recorded.

Periods are a pure function of time (`Board.period_at`): no scheduled job decides when a day
ends, so a reset can never be missed or fire twice, and every process agrees on it. The ids:
`all`, `2026-12-01`, `2026-W49`, `2026-12`.

A `View` is one ranked list: a board, one of its periods, and one region ("" when the board is
not partitioned). Its `key` names it everywhere a string is needed (caches, change notices,
Redis keys, where it is one hash tag); it never contains `{`, `}` or `:` inside its parts.

The total board: a board that is all-time, sums, counts every action and is not partitioned
is each user's total score (`Board.is_total`). The store keeps totals anyway (the score a
write answers with), so such a board costs no row of its own per event.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import quote, unquote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from scoreboard.domain.errors import InvalidScope, ValidationFailed
from scoreboard.domain.times import rfc3339

Window = Literal["all_time", "daily", "weekly", "monthly"]
Aggregate = Literal["sum", "best"]
WINDOWS: tuple[str, ...] = get_args(Window)
AGGREGATES: tuple[str, ...] = get_args(Aggregate)
ALL_TIME_ID = "all"
BOARD_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY_ID = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_WEEK_ID = re.compile(r"^(\d{4})-W(\d{2})$")
_MONTH_ID = re.compile(r"^(\d{4})-(\d{2})$")


def from_us(at_us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=at_us)


def to_us(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Period:
    """One period of a board: `[starts_at, ends_at)`, both None for all time."""

    id: str
    starts_at: datetime | None
    ends_at: datetime | None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "id": self.id,
            "starts_at": None if self.starts_at is None else rfc3339(self.starts_at),
            "ends_at": None if self.ends_at is None else rfc3339(self.ends_at),
        }


@dataclass(frozen=True, slots=True)
class View:
    """One ranked list: a board, one of its periods, one region ("" when not partitioned)."""

    board_id: str
    period_id: str
    region: str = ""
    # Computed once: views are made on every read and write, their keys looked up as often.
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        region = quote(self.region, safe="") if self.region else ""
        object.__setattr__(self, "key", f"{self.board_id}:{self.period_id}:{region}")

    @classmethod
    def from_key(cls, key: str) -> View:
        board_id, period_id, region = key.split(":", 2)
        return cls(board_id, period_id, unquote(region))


class BoardFileError(ValueError):
    """A bad boards file: the message names the board and the field."""


@dataclass(frozen=True, slots=True)
class Board:
    board_id: str
    title: str = ""
    window: Window = "all_time"
    timezone: str = "UTC"
    aggregate: Aggregate = "sum"
    actions: frozenset[str] | None = None
    partition: Literal["region"] | None = None
    _tz: tzinfo = field(default=UTC, init=False, repr=False, compare=False)
    # The last period computed, (starts_us, ends_us, id): nearly every event of a burst falls
    # in it, so `period_id_at` is two comparisons instead of a timezone conversion. One tuple,
    # replaced whole: threads reading it (the SQLite writer, the event loop) see one period.
    _span: tuple[int, int, str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        def bad(name: str, problem: str) -> BoardFileError:
            return BoardFileError(f"board {self.board_id!r}: field {name!r}: {problem}")

        if not isinstance(self.board_id, str) or not BOARD_ID.match(self.board_id):
            raise bad("board_id", "must match [a-z0-9][a-z0-9_-]{0,47}")
        if not isinstance(self.title, str) or len(self.title) > 200:
            raise bad("title", "must be a string of at most 200 characters")
        if self.window not in WINDOWS:
            raise bad("window", f"must be one of {', '.join(WINDOWS)}")
        if self.aggregate not in AGGREGATES:
            raise bad("aggregate", f"must be one of {', '.join(AGGREGATES)}")
        if self.partition not in (None, "region"):
            raise bad("partition", 'must be absent or "region"')
        if self.actions is not None and (
            not self.actions or not all(isinstance(a, str) and a for a in self.actions)
        ):
            raise bad("actions", "must be a non-empty list of action types, or absent")
        try:
            zone = ZoneInfo(self.timezone) if isinstance(self.timezone, str) else None
        except (ZoneInfoNotFoundError, ValueError):
            zone = None
        if zone is None:
            raise bad("timezone", f"unknown IANA timezone {self.timezone!r}")
        object.__setattr__(self, "_tz", zone)

    # -- what counts ---------------------------------------------------------------------------
    @property
    def is_total(self) -> bool:
        """All time, summed, every action, one list: each user's total score."""
        return (
            self.window == "all_time"
            and self.aggregate == "sum"
            and self.actions is None
            and self.partition is None
        )

    def counts(self, action_type: str) -> bool:
        return self.actions is None or action_type in self.actions

    def region_of(self, user_region: str | None) -> str | None:
        """The list an event of a user with `user_region` counts on: "" when the board is not
        partitioned, the region, or None (a partitioned board, a user without a region)."""
        if self.partition is None:
            return ""
        return user_region or None

    def view_at(self, at_us: int, user_region: str | None) -> View | None:
        region = self.region_of(user_region)
        if region is None:
            return None
        return View(self.board_id, self.period_id_at(at_us), region)

    # -- periods -------------------------------------------------------------------------------
    def _local_day(self, at_us: int) -> date:
        return from_us(at_us).astimezone(self._tz).date()

    def period_id_at(self, at_us: int) -> str:
        if self.window == "all_time":
            return ALL_TIME_ID
        span = self._span
        if span is not None and span[0] <= at_us < span[1]:
            return span[2]
        found = self._period_id_of(at_us)
        period = self.period(found)
        assert period.starts_at is not None and period.ends_at is not None
        object.__setattr__(self, "_span", (to_us(period.starts_at), to_us(period.ends_at), found))
        return found

    def _period_id_of(self, at_us: int) -> str:
        day = self._local_day(at_us)
        if self.window == "daily":
            return day.isoformat()
        if self.window == "weekly":
            year, week, _ = day.isocalendar()
            return f"{year:04d}-W{week:02d}"
        return f"{day.year:04d}-{day.month:02d}"

    def period_at(self, at_us: int) -> Period:
        return self.period(self.period_id_at(at_us))

    def period(self, period_id: str) -> Period:
        """The period named `period_id`; `ValidationFailed` for an id this board cannot have."""
        if self.window == "all_time":
            if period_id != ALL_TIME_ID:
                raise self._bad_period(period_id)
            return Period(ALL_TIME_ID, None, None)
        first, after = self._bounds(period_id)
        return Period(period_id, self._midnight(first), self._midnight(after))

    def _bounds(self, period_id: str) -> tuple[date, date]:
        pattern = {"daily": _DAY_ID, "weekly": _WEEK_ID, "monthly": _MONTH_ID}[self.window]
        match = pattern.match(period_id)
        if match is None:
            raise self._bad_period(period_id)
        numbers = [int(g) for g in match.groups()]
        try:
            if self.window == "daily":
                first = date(*numbers)
                return first, first + timedelta(days=1)
            if self.window == "weekly":
                first = date.fromisocalendar(numbers[0], numbers[1], 1)
                return first, first + timedelta(days=7)
            first = date(numbers[0], numbers[1], 1)
        except ValueError:
            raise self._bad_period(period_id) from None
        after = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        return first, after

    def _midnight(self, day: date) -> datetime:
        """The first instant of the local `day`, in UTC. `fold=0`: where midnight repeats, the
        first one; where it is skipped (a DST gap), the offset before the gap gives the
        instant the gap ends."""
        return datetime.combine(day, time(0), tzinfo=self._tz).astimezone(UTC)

    def _bad_period(self, period_id: str) -> ValidationFailed:
        shapes = {
            "all_time": "all",
            "daily": "YYYY-MM-DD",
            "weekly": "YYYY-Www (ISO week)",
            "monthly": "YYYY-MM",
        }
        return ValidationFailed(
            f"period {period_id[:40]!r} is not a period of board {self.board_id!r}: use "
            f"current, previous or an id like {shapes[self.window]}.",
            details={"field": "period"},
        )

    def resolve(self, text: str | None, now_us: int) -> Period:
        """`current` (also None), `previous`, or a period id, as of `now_us`."""
        current = self.period_at(now_us)
        if text is None or text == "current":
            return current
        if text == "previous":
            if current.starts_at is None:
                raise ValidationFailed(
                    f"board {self.board_id!r} is all-time: it has no previous period.",
                    details={"field": "period"},
                )
            return self.period_at(to_us(current.starts_at) - 1)
        return self.period(text)

    def next_reset_at(self, now_us: int) -> datetime | None:
        return self.period_at(now_us).ends_at

    # -- description ---------------------------------------------------------------------------
    def definition(self) -> dict[str, Any]:
        """What decides the board's content (not its title): a board whose definition changes
        is recomputed from the event log."""
        return {
            "board_id": self.board_id,
            "window": self.window,
            "timezone": self.timezone,
            "aggregate": self.aggregate,
            "actions": None if self.actions is None else sorted(self.actions),
            "partition": self.partition,
        }

    @property
    def fingerprint(self) -> str:
        text = json.dumps(self.definition(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def as_dict(self, now_us: int) -> dict[str, Any]:
        return {
            **self.definition(),
            "title": self.title,
            "period": self.period_at(now_us).as_dict(),
        }

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], position: int) -> Board:
        name = data.get("board_id", f"#{position + 1}") if isinstance(data, Mapping) else None
        if not isinstance(data, Mapping):
            raise BoardFileError(f"board #{position + 1}: must be an object")
        known = {"board_id", "title", "window", "timezone", "aggregate", "actions", "partition"}
        for key in data:
            if key not in known:
                raise BoardFileError(f"board {name!r}: field {key!r}: unknown field")
        actions = data.get("actions")
        if actions is not None and not isinstance(actions, list):
            raise BoardFileError(f"board {name!r}: field 'actions': must be a list")
        return cls(
            board_id=data.get("board_id"),  # type: ignore[arg-type]  # checked in __post_init__
            title=data.get("title", data.get("board_id", "")),
            window=data.get("window", "all_time"),
            timezone=data.get("timezone", "UTC"),
            aggregate=data.get("aggregate", "sum"),
            actions=None if actions is None else frozenset(actions),
            partition=data.get("partition"),
        )


DEFAULT_BOARDS: tuple[Board, ...] = (
    Board("global", "All time", "all_time"),
    Board("daily", "Today", "daily"),
    Board("weekly", "This week", "weekly"),
    Board("monthly", "This month", "monthly"),
)


class BoardCatalogue:
    """The set of boards, looked up by id (the `scope` of every route)."""

    def __init__(self, boards: Iterable[Board]) -> None:
        self._boards: dict[str, Board] = {}
        for board in boards:
            if board.board_id in self._boards:
                raise BoardFileError(f"board {board.board_id!r}: field 'board_id': duplicate")
            self._boards[board.board_id] = board
        if not self._boards:
            raise BoardFileError("the boards file defines no board")

    @classmethod
    def default(cls) -> BoardCatalogue:
        return cls(DEFAULT_BOARDS)

    @classmethod
    def from_file(cls, path: Path) -> BoardCatalogue:
        """Load `{"boards": [{board_id, title, window, ...}, ...]}`; `BoardFileError` names
        the board and the field of the first problem."""
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise BoardFileError(f"boards file {path}: cannot be read as JSON: {exc}") from None
        boards = data.get("boards") if isinstance(data, dict) else None
        if not isinstance(boards, list):
            raise BoardFileError(f"boards file {path}: must be an object with a 'boards' list")
        return cls(Board.from_mapping(item, i) for i, item in enumerate(boards))

    def __iter__(self) -> Any:
        return iter(self._boards.values())

    def __len__(self) -> int:
        return len(self._boards)

    def __contains__(self, board_id: object) -> bool:
        return board_id in self._boards

    def get(self, board_id: str) -> Board:
        board = self._boards.get(board_id)
        if board is None:
            raise InvalidScope(
                f"Unknown leaderboard scope {board_id[:64]!r}; known: {sorted(self._boards)}."
            )
        return board

    def counted(self, action_type: str, user_region: str | None, at_us: int) -> list[View]:
        """Every view an event counts on (the total board's included)."""
        views = []
        for board in self._boards.values():
            if board.counts(action_type):
                view = board.view_at(at_us, user_region)
                if view is not None:
                    views.append(view)
        return views

    @property
    def total(self) -> Board | None:
        """The first board that is each user's total score (`Board.is_total`), if any."""
        return next((b for b in self._boards.values() if b.is_total), None)


def fold(
    aggregate: Aggregate, held: tuple[int, int] | None, points: int, at_us: int
) -> tuple[int, int] | None:
    """The one rule of a board row: (score, reached_at_us) after an event of `points` at
    `at_us`, given what the row `held` (None: the user is not on this list yet); None when
    the event leaves the row as it was. `sum` adds (the time moves on with any non-zero
    change, as on the total); `best` keeps the highest single event, the earliest time
    reaching it."""
    if held is None:
        return points, at_us
    score = held[0]
    if aggregate == "sum":
        if points == 0:
            return None
        return score + points, at_us
    if points > score:
        return points, at_us
    return None
