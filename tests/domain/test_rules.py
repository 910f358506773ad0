"""The anomaly rules (domain/rules.py): the rules file, what trips, and the windows flags
are deduped by."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scoreboard.domain.boards import to_us
from scoreboard.domain.rules import (
    MAX_ACCOUNTS_PER_ADDRESS,
    MAX_POINTS_PER_MINUTE,
    MIN_ACTION_DURATION,
    Rules,
    RulesFileError,
    address_trip,
    duration_trip,
    hour_window,
    minute_window,
    points_trip,
)

AT = to_us(datetime(2026, 12, 2, 12, 34, 56, 789_000, tzinfo=UTC))


def test_the_defaults() -> None:
    assert Rules().as_dict() == {
        "max_points_per_minute": 600,
        "max_accounts_per_address_per_hour": 20,
        "min_action_duration": True,
        "auto_quarantine": False,
    }


def test_a_rules_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"max_points_per_minute": 50, "auto_quarantine": True}))
    rules = Rules.from_file(path)
    assert rules == Rules(max_points_per_minute=50, auto_quarantine=True)
    path.write_text("{}")
    assert Rules.from_file(path) == Rules()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"max_points_per_minutes": 5}', "field 'max_points_per_minutes': unknown field"),
        ('{"max_points_per_minute": "600"}', "field 'max_points_per_minute': must be an integer"),
        ('{"max_points_per_minute": 0}', "field 'max_points_per_minute': must be an integer"),
        ('{"max_points_per_minute": 1.5}', "field 'max_points_per_minute': must be an integer"),
        ('{"max_points_per_minute": true}', "field 'max_points_per_minute': must be an integer"),
        (
            '{"max_accounts_per_address_per_hour": -1}',
            "field 'max_accounts_per_address_per_hour': must be an integer",
        ),
        ('{"auto_quarantine": 1}', "field 'auto_quarantine': must be true or false"),
        ('{"min_action_duration": "yes"}', "field 'min_action_duration': must be true or false"),
        ('["max_points_per_minute"]', "must be a JSON object"),
        ("{not json", "cannot be read as JSON"),
    ],
)
def test_a_bad_rules_file_names_the_file_and_the_field(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "rules.json"
    path.write_text(content)
    with pytest.raises(RulesFileError, match=f"rules file {path}: .*{message}"):
        Rules.from_file(path)


def test_a_missing_rules_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.json"
    with pytest.raises(RulesFileError, match=f"rules file {path}: cannot be read"):
        Rules.from_file(path)


def test_windows_are_the_utc_minute_and_hour() -> None:
    assert minute_window(AT) == "2026-12-02T12:34Z"
    assert hour_window(AT) == "2026-12-02T12Z"
    assert minute_window(AT + 4_000_000) == "2026-12-02T12:35Z"  # the next minute
    assert hour_window(AT + 4_000_000) == "2026-12-02T12Z"


def test_the_points_rule_trips_above_the_limit() -> None:
    rules = Rules(max_points_per_minute=100)
    assert points_trip(rules, "u1", AT, 100) is None  # at the limit: fine
    trip = points_trip(rules, "u1", AT, 101)
    assert trip is not None
    assert (trip.user_id, trip.rule, trip.window) == (
        "u1",
        MAX_POINTS_PER_MINUTE,
        minute_window(AT),
    )
    assert trip.detail == {"points": 101, "limit": 100, "window_seconds": 60}


def test_the_address_rule_trips_above_the_limit() -> None:
    rules = Rules(max_accounts_per_address_per_hour=3)
    assert address_trip(rules, "u1", AT, 3, "abc") is None
    trip = address_trip(rules, "u1", AT, 4, "abc")
    assert trip is not None
    assert (trip.rule, trip.window) == (MAX_ACCOUNTS_PER_ADDRESS, hour_window(AT))
    assert trip.detail == {"accounts": 4, "limit": 3, "window_seconds": 3600, "address_id": "abc"}


def test_the_duration_rule_can_be_turned_off() -> None:
    kwargs = {
        "action_id": "a1",
        "action_type": "LEVEL",
        "elapsed_seconds": 1.23456,
        "min_duration_seconds": 30.0,
    }
    trip = duration_trip(Rules(), "u1", AT, **kwargs)  # type: ignore[arg-type]
    assert trip is not None and (trip.rule, trip.window) == (MIN_ACTION_DURATION, hour_window(AT))
    assert trip.detail == {
        "action_id": "a1",
        "action_type": "LEVEL",
        "elapsed_seconds": 1.235,
        "min_duration_seconds": 30.0,
    }
    off = Rules(min_action_duration=False)
    assert duration_trip(off, "u1", AT, **kwargs) is None  # type: ignore[arg-type]
