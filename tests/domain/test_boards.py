"""The board catalogue and periods: ids, bounds, timezones and DST, ISO weeks, file errors."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoreboard.domain.boards import (
    Board,
    BoardCatalogue,
    BoardFileError,
    View,
    fold,
    from_us,
    to_us,
)
from scoreboard.domain.errors import InvalidScope, ValidationFailed


def us(*args: int, tz: str = "UTC") -> int:
    return to_us(datetime(*args, tzinfo=ZoneInfo(tz)))  # type: ignore[arg-type,misc]


DAILY = Board("d", "d", "daily")
WEEKLY = Board("w", "w", "weekly")
MONTHLY = Board("m", "m", "monthly")


def test_defaults_are_global_daily_weekly_monthly_in_utc() -> None:
    boards = list(BoardCatalogue.default())
    assert [(b.board_id, b.window, b.timezone) for b in boards] == [
        ("global", "all_time", "UTC"),
        ("daily", "daily", "UTC"),
        ("weekly", "weekly", "UTC"),
        ("monthly", "monthly", "UTC"),
    ]
    assert BoardCatalogue.default().total is boards[0]
    assert [b.is_total for b in boards] == [True, False, False, False]


def test_the_last_microsecond_of_a_day_and_the_first_of_the_next_are_different_days() -> None:
    last = us(2026, 12, 1, 23, 59, 59, 999999)
    first = us(2026, 12, 2, 0, 0, 0, 0)
    assert first - last == 1
    assert DAILY.period_id_at(last) == "2026-12-01"
    assert DAILY.period_id_at(first) == "2026-12-02"
    period = DAILY.period_at(last)
    assert period.ends_at == from_us(first)
    assert DAILY.period_at(first).starts_at == from_us(first)


def test_iso_weeks_start_on_monday_and_cross_years() -> None:
    # 2027-01-01 is a Friday: it belongs to 2026's week 53.
    assert WEEKLY.period_id_at(us(2027, 1, 1, 12)) == "2026-W53"
    assert WEEKLY.period_id_at(us(2027, 1, 4)) == "2027-W01"
    week = WEEKLY.period("2026-W49")
    assert week.starts_at == datetime(2026, 11, 30, tzinfo=UTC)
    assert week.ends_at == datetime(2026, 12, 7, tzinfo=UTC)
    with pytest.raises(ValidationFailed):
        WEEKLY.period("2027-W53")  # 2027 has 52 ISO weeks


def test_months_and_december() -> None:
    december = MONTHLY.period("2026-12")
    assert december.starts_at == datetime(2026, 12, 1, tzinfo=UTC)
    assert december.ends_at == datetime(2027, 1, 1, tzinfo=UTC)
    assert MONTHLY.resolve("previous", us(2027, 1, 1)).id == "2026-12"


def test_a_day_in_a_timezone_and_across_dst() -> None:
    paris = Board("p", "p", "daily", "Europe/Paris")
    # 2026-03-29: clocks go 02:00 -> 03:00 in Paris, the day has 23 hours.
    spring = paris.period("2026-03-29")
    assert spring.starts_at == datetime(2026, 3, 28, 23, tzinfo=UTC)
    assert spring.ends_at is not None and spring.starts_at is not None
    assert spring.ends_at - spring.starts_at == timedelta(hours=23)
    # 2026-10-25: 03:00 -> 02:00, 25 hours.
    autumn = paris.period("2026-10-25")
    assert autumn.ends_at is not None and autumn.starts_at is not None
    assert autumn.ends_at - autumn.starts_at == timedelta(hours=25)
    # 23:30 UTC on the 28th is already the 29th in Paris (UTC+1).
    assert paris.period_id_at(us(2026, 3, 28, 23, 30)) == "2026-03-29"


def test_a_midnight_that_does_not_exist() -> None:
    # Chile springs forward at 24:00 on 2026-09-05: 2026-09-06 starts at 01:00 local (-03).
    santiago = Board("s", "s", "daily", "America/Santiago")
    day = santiago.period("2026-09-06")
    assert day.starts_at == datetime(2026, 9, 6, 4, tzinfo=UTC)
    assert santiago.period_id_at(to_us(datetime(2026, 9, 6, 3, 59, 59, tzinfo=UTC))) == "2026-09-05"
    assert santiago.period_id_at(to_us(datetime(2026, 9, 6, 4, tzinfo=UTC))) == "2026-09-06"


@settings(max_examples=300, deadline=None)
@given(
    at=st.integers(min_value=us(2000, 1, 1), max_value=us(2100, 1, 1)),
    zone=st.sampled_from(
        [
            "UTC",
            "Europe/Paris",
            "America/Santiago",
            "Australia/Lord_Howe",
            "Asia/Kathmandu",
            "America/St_Johns",
            "Pacific/Apia",
        ]
    ),
    window=st.sampled_from(["daily", "weekly", "monthly"]),
)
def test_every_instant_lies_in_its_period_and_periods_tile_time(
    at: int, zone: str, window: str
) -> None:
    board = Board("b", "b", window, zone)  # type: ignore[arg-type]
    period = board.period_at(at)
    assert period.starts_at is not None and period.ends_at is not None
    assert to_us(period.starts_at) <= at < to_us(period.ends_at)
    # The next period starts exactly where this one ends; the previous ends where it starts.
    assert board.period_at(to_us(period.ends_at)).starts_at == period.ends_at
    assert board.period_at(to_us(period.starts_at) - 1).ends_at == period.starts_at
    assert board.resolve("previous", at).ends_at == period.starts_at
    assert board.next_reset_at(at) == period.ends_at
    assert board.period(period.id) == period  # an id names its period


def test_current_previous_and_ids() -> None:
    now = us(2026, 12, 4, 18)
    assert DAILY.resolve(None, now).id == "2026-12-04"
    assert DAILY.resolve("current", now).id == "2026-12-04"
    assert DAILY.resolve("previous", now).id == "2026-12-03"
    assert DAILY.resolve("2025-01-31", now).id == "2025-01-31"
    for bad in ("2026-W49", "2026-12", "2026-02-30", "yesterday", "", "2026-12-04 ", "all"):
        with pytest.raises(ValidationFailed):
            DAILY.resolve(bad, now)
    glob = Board("g", "g", "all_time")
    assert glob.resolve("current", now).id == "all"
    assert glob.resolve("all", now).as_dict() == {"id": "all", "starts_at": None, "ends_at": None}
    assert glob.next_reset_at(now) is None
    with pytest.raises(ValidationFailed):
        glob.resolve("previous", now)


def test_what_counts_where() -> None:
    regional = Board("r", "r", "weekly", partition="region", actions=frozenset({"A"}))
    catalogue = BoardCatalogue([Board("global"), regional])
    at = us(2026, 12, 4)
    assert catalogue.counted("A", "eu", at) == [
        View("global", "all", ""),
        View("r", "2026-W49", "eu"),
    ]
    assert catalogue.counted("B", "eu", at) == [View("global", "all", "")]
    assert catalogue.counted("A", None, at) == [View("global", "all", "")]  # no region: none
    with pytest.raises(InvalidScope):
        catalogue.get("nope")


def test_view_keys_round_trip_and_never_contain_hash_tag_characters() -> None:
    for region in ("", "eu", "a:b", "{x}", "é ü", "%41"):
        view = View("weekly", "2026-W49", region)
        assert View.from_key(view.key) == view
        assert "{" not in view.key and "}" not in view.key
        assert view.key.count(":") == 2


def test_fold_sum_and_best() -> None:
    assert fold("sum", None, 10, 5) == (10, 5)
    assert fold("sum", (10, 5), 3, 9) == (13, 9)
    assert fold("sum", (10, 5), -4, 9) == (6, 9)
    assert fold("sum", (10, 5), 0, 9) is None
    assert fold("best", None, 10, 5) == (10, 5)
    assert fold("best", (10, 5), 10, 9) is None  # equal: the earlier time stays
    assert fold("best", (10, 5), 7, 9) is None
    assert fold("best", (10, 5), 11, 9) == (11, 9)


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "boards.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("boards", "message"),
    [
        ([{"board_id": "w", "window": "hourly"}], "board 'w': field 'window'"),
        ([{"board_id": "w", "timezone": "Mars/Olympus"}], "board 'w': field 'timezone'"),
        ([{"board_id": "w", "aggregate": "avg"}], "board 'w': field 'aggregate'"),
        ([{"board_id": "w", "partition": "country"}], "board 'w': field 'partition'"),
        ([{"board_id": "w", "actions": []}], "board 'w': field 'actions'"),
        ([{"board_id": "w", "actions": "A"}], "board 'w': field 'actions'"),
        ([{"board_id": "W X"}], "field 'board_id'"),
        ([{"title": "no id"}], "field 'board_id'"),
        ([{"board_id": "w", "colour": "red"}], "board 'w': field 'colour'"),
        ([{"board_id": "w"}, {"board_id": "w"}], "board 'w': field 'board_id': duplicate"),
        ([], "defines no board"),
        (["w"], "board #1"),
    ],
)
def test_a_bad_boards_file_names_the_board_and_the_field(
    tmp_path: Path, boards: object, message: str
) -> None:
    with pytest.raises(BoardFileError, match=message.replace("(", r"\(")):
        BoardCatalogue.from_file(write(tmp_path, {"boards": boards}))


def test_a_boards_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "boards": [
                {"board_id": "global", "title": "All time"},
                {
                    "board_id": "quiz_best",
                    "window": "weekly",
                    "aggregate": "best",
                    "actions": ["QUIZ_PASSED"],
                    "timezone": "Europe/Paris",
                },
                {"board_id": "weekly_region", "window": "weekly", "partition": "region"},
            ]
        },
    )
    catalogue = BoardCatalogue.from_file(path)
    assert [b.board_id for b in catalogue] == ["global", "quiz_best", "weekly_region"]
    quiz = catalogue.get("quiz_best")
    assert quiz.actions == frozenset({"QUIZ_PASSED"}) and not quiz.is_total
    body = quiz.as_dict(us(2026, 12, 4))
    assert body["period"]["id"] == "2026-W49"
    assert body["actions"] == ["QUIZ_PASSED"] and body["title"] == "quiz_best"
    assert quiz.fingerprint != Board("quiz_best", window="weekly").fingerprint
    assert (
        quiz.fingerprint
        == Board(
            "quiz_best",
            "Another title",
            "weekly",
            "Europe/Paris",
            "best",
            frozenset({"QUIZ_PASSED"}),
        ).fingerprint
    )  # the title is not part of the content
    assert date(2026, 12, 4) == from_us(us(2026, 12, 4)).date()
