"""Anomaly rules (API.md section 6, docs/RULES.md): what trips a flag, and the window a flag
belongs to. Pure: the counts come from the store (`service/rules.py` asks it), the decisions
are made here.

- `max_points_per_minute`: the points a user scored in the sliding minute that ends with the
  second of their event (the event's own second and the 59 before it) exceed the limit.
- `max_accounts_per_address_per_hour`: the distinct accounts that scored from the event's
  client address in the sliding hour that ends with the event exceed the limit; the user of
  the event is flagged (so every account still scoring from that address is, once each).
- `min_action_duration`: a completion refused for coming sooner than its action type's
  `min_duration_seconds` (specification 001, `service/actions.py`).

A flag is written at most once per (user, rule, window): the window is the UTC minute
(`2026-12-02T12:34Z`) of the tripping event for the points rule and its UTC hour
(`2026-12-02T12Z`) for the two others. The key is a function of the event's time alone, so
every process evaluating computes the same one and the store's unique key dedupes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

MAX_POINTS_PER_MINUTE = "max_points_per_minute"
MAX_ACCOUNTS_PER_ADDRESS = "max_accounts_per_address_per_hour"
MIN_ACTION_DURATION = "min_action_duration"
RULE_NAMES = (MAX_POINTS_PER_MINUTE, MAX_ACCOUNTS_PER_ADDRESS, MIN_ACTION_DURATION)

MINUTE_SECONDS = 60
HOUR_SECONDS = 3600
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LIMIT_MAX = 10**12

# A flag is `open` until an admin resolves it; `resolution` then says how.
OPEN, RESOLVED = "open", "resolved"
STATUSES = (OPEN, RESOLVED)
# The resolve route's action -> the flag's resolution.
RESOLUTIONS = {"dismiss": "dismissed", "ban": "banned", "quarantine": "quarantined"}


class RulesFileError(ValueError):
    """A bad rules file: the message names the file and the field."""


@dataclass(frozen=True, slots=True)
class Rules:
    """The rules in force; `Rules()` is the defaults."""

    max_points_per_minute: int = 600
    max_accounts_per_address_per_hour: int = 20
    min_action_duration: bool = True
    auto_quarantine: bool = False

    @classmethod
    def from_mapping(cls, data: Any, source: str = "rules file") -> Rules:
        """`data` as the rules file holds it: an object of the fields above, each optional.
        `RulesFileError` naming `source` and the field of the first problem."""
        if not isinstance(data, dict):
            raise RulesFileError(f"{source}: must be a JSON object of rule settings")
        types = {f.name: f.type for f in fields(cls)}
        for name, value in data.items():
            kind = types.get(name)
            if kind is None:
                known = ", ".join(types)
                raise RulesFileError(f"{source}: field {name!r}: unknown field (known: {known})")
            if kind == "bool" and type(value) is not bool:
                raise RulesFileError(f"{source}: field {name!r}: must be true or false")
            if kind == "int" and (type(value) is not int or not 1 <= value <= LIMIT_MAX):
                raise RulesFileError(
                    f"{source}: field {name!r}: must be an integer from 1 to {LIMIT_MAX}"
                )
        return cls(**data)

    @classmethod
    def from_file(cls, path: Path) -> Rules:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise RulesFileError(f"rules file {path}: cannot be read as JSON: {exc}") from None
        return cls.from_mapping(data, f"rules file {path}")

    def as_dict(self) -> dict[str, int | bool]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class Trip:
    """A rule that tripped: the flag to write, unless the (user, rule, window) has one."""

    user_id: str
    rule: str
    window: str
    detail: dict[str, Any]


def _moment(at_us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=at_us)


def minute_window(at_us: int) -> str:
    return _moment(at_us).strftime("%Y-%m-%dT%H:%MZ")


def hour_window(at_us: int) -> str:
    return _moment(at_us).strftime("%Y-%m-%dT%HZ")


def points_trip(rules: Rules, user_id: str, at_us: int, points_in_minute: int) -> Trip | None:
    """The points rule on a user's event at `at_us`, given their points in its minute."""
    limit = rules.max_points_per_minute
    if points_in_minute <= limit:
        return None
    detail = {"points": points_in_minute, "limit": limit, "window_seconds": MINUTE_SECONDS}
    return Trip(user_id, MAX_POINTS_PER_MINUTE, minute_window(at_us), detail)


def address_trip(
    rules: Rules, user_id: str, at_us: int, accounts: int, address_id: str
) -> Trip | None:
    """The address rule on an event at `at_us`, given the accounts that scored from its
    address in the hour; `address_id` is a pseudonym of the address (never the address)."""
    limit = rules.max_accounts_per_address_per_hour
    if accounts <= limit:
        return None
    detail = {
        "accounts": accounts,
        "limit": limit,
        "window_seconds": HOUR_SECONDS,
        "address_id": address_id,
    }
    return Trip(user_id, MAX_ACCOUNTS_PER_ADDRESS, hour_window(at_us), detail)


def duration_trip(
    rules: Rules,
    user_id: str,
    at_us: int,
    *,
    action_id: str,
    action_type: str,
    elapsed_seconds: float,
    min_duration_seconds: float,
) -> Trip | None:
    """The duration rule on a completion refused as too fast (None when the rule is off)."""
    if not rules.min_action_duration:
        return None
    detail = {
        "action_id": action_id,
        "action_type": action_type,
        "elapsed_seconds": round(elapsed_seconds, 3),
        "min_duration_seconds": min_duration_seconds,
    }
    return Trip(user_id, MIN_ACTION_DURATION, hour_window(at_us), detail)
