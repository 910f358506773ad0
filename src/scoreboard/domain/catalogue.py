"""The action catalogue: the server's authority on what every action is worth.

Clients never decide their own score. Canonical routes award exactly `points`; compatibility
routes that let a client send a `score_increment` accept it only within
`[min_increment, max_increment]`. An action with a lifecycle rule (`min_duration_seconds` > 0)
is scorable only through its lifecycle (start, then complete): a route that scores at once
would skip the rule.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scoreboard.domain.errors import InvalidActionType, ValidationFailed


@dataclass(frozen=True, slots=True)
class ActionRule:
    """What one action type is worth and how it may be completed."""

    action_type: str
    points: int
    description: str = ""
    min_increment: int = 1
    max_increment: int = 100
    # Lifecycle actions (start, then complete): a completion sooner than this after the start is
    # refused as implausible; an action open longer than max_open_seconds can no longer complete.
    min_duration_seconds: float = 0.0
    max_open_seconds: float = 24 * 3600.0

    def __post_init__(self) -> None:
        if not self.action_type or not self.action_type.replace("_", "").isalnum():
            raise ValueError(f"bad action_type {self.action_type!r}")
        if not (self.min_increment <= self.points <= self.max_increment):
            raise ValueError(f"{self.action_type}: points must lie within the increment bounds")
        if self.min_increment < 1:
            raise ValueError(f"{self.action_type}: increments must be positive")
        if self.min_duration_seconds < 0 or self.max_open_seconds <= self.min_duration_seconds:
            raise ValueError(f"{self.action_type}: bad duration bounds")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def lifecycle_only(self) -> bool:
        """Whether only a completed lifecycle (start, wait, complete) may score this action."""
        return self.min_duration_seconds > 0

    def check_direct(self) -> None:
        """Refuse (`ValidationFailed`) to score a lifecycle-only action without its lifecycle."""
        if self.lifecycle_only:
            raise ValidationFailed(
                f"{self.action_type} takes at least {self.min_duration_seconds:g} s: score it "
                "through its lifecycle (POST /users/{userId}/actions with its type, then PUT "
                "/users/{userId}/actions/{actionId} with status completed).",
                details={
                    "field": "action_type",
                    "problem": "lifecycle_only",
                    "min_duration_seconds": self.min_duration_seconds,
                },
            )


DEFAULT_RULES: tuple[ActionRule, ...] = (
    ActionRule("TASK_COMPLETED", 10, "A task was completed.", 1, 100),
    ActionRule("DAILY_LOGIN", 5, "First sign-in of the day.", 1, 5),
    ActionRule("QUIZ_PASSED", 25, "A quiz was passed.", 1, 100, min_duration_seconds=5.0),
    ActionRule("LEVEL_COMPLETED", 50, "A game level was completed.", 1, 500, 2.0, 3600.0),
    ActionRule("ACHIEVEMENT_UNLOCKED", 100, "An achievement was unlocked.", 1, 1000),
    # The name specification 004's clients send (lower case), with its example increment 100.
    ActionRule("level_complete", 100, "A game level was completed (spec 004).", 1, 500),
)


class Catalogue:
    """An immutable set of action rules, looked up by action type."""

    def __init__(self, rules: Iterable[ActionRule], default_action_type: str = "TASK_COMPLETED"):
        self._rules: dict[str, ActionRule] = {}
        for rule in rules:
            if rule.action_type in self._rules:
                raise ValueError(f"duplicate action_type {rule.action_type}")
            self._rules[rule.action_type] = rule
        if default_action_type not in self._rules:
            raise ValueError(f"default action type {default_action_type} is not in the catalogue")
        self.default_action_type = default_action_type

    @classmethod
    def default(cls) -> Catalogue:
        return cls(DEFAULT_RULES)

    @classmethod
    def from_file(cls, path: Path) -> Catalogue:
        """Load `{"default_action_type": ..., "actions": [{action_type, points, ...}]}`."""
        data = json.loads(path.read_text())
        rules = [ActionRule(**item) for item in data["actions"]]
        return cls(rules, data.get("default_action_type", rules[0].action_type))

    def rules(self) -> list[ActionRule]:
        return list(self._rules.values())

    @property
    def max_points(self) -> int:
        """The most one event awards on the canonical route (the catalogue's highest points)."""
        return max(rule.points for rule in self._rules.values())

    def get(self, action_type: str | None) -> ActionRule:
        """The rule for `action_type` (the default type when None); unknown → InvalidActionType."""
        key = self.default_action_type if action_type is None else action_type
        rule = self._rules.get(key)
        if rule is None:
            raise InvalidActionType(f"action_type {key!r} is not supported.")
        return rule

    def points_for(self, action_type: str | None, increment: int | None = None) -> int:
        """Points to award: the catalogue's, or a client increment checked against its bounds."""
        rule = self.get(action_type)
        if increment is None:
            return rule.points
        if not (rule.min_increment <= increment <= rule.max_increment):
            raise ValidationFailed(
                f"score_increment must be between {rule.min_increment} and "
                f"{rule.max_increment} for {rule.action_type}.",
                details={"field": "score_increment"},
            )
        return increment
