import json
from pathlib import Path

import pytest

from scoreboard.domain.catalogue import ActionRule, Catalogue
from scoreboard.domain.errors import InvalidActionType, ValidationFailed


def test_default_catalogue_awards_server_points() -> None:
    catalogue = Catalogue.default()
    assert catalogue.points_for("TASK_COMPLETED") == 10
    assert catalogue.points_for(None) == 10  # the default action type


def test_unknown_action_is_refused() -> None:
    with pytest.raises(InvalidActionType, match="FOO_BAR"):
        Catalogue.default().get("FOO_BAR")


@pytest.mark.parametrize("increment", [0, -5, 101, 10**12])
def test_client_increment_outside_bounds_is_refused(increment: int) -> None:
    with pytest.raises(ValidationFailed):
        Catalogue.default().points_for("TASK_COMPLETED", increment)


@pytest.mark.parametrize("increment", [1, 55, 100])
def test_client_increment_within_bounds(increment: int) -> None:
    assert Catalogue.default().points_for("TASK_COMPLETED", increment) == increment


def test_rules_validate_themselves() -> None:
    with pytest.raises(ValueError):
        ActionRule("X", 500, max_increment=100)
    with pytest.raises(ValueError):
        ActionRule("BAD TYPE", 1)
    with pytest.raises(ValueError):
        Catalogue([ActionRule("A", 1)], default_action_type="B")


def test_catalogue_from_file(tmp_path: Path) -> None:
    path = tmp_path / "actions.json"
    path.write_text(
        json.dumps(
            {
                "default_action_type": "WIN",
                "actions": [{"action_type": "WIN", "points": 3, "max_increment": 3}],
            }
        )
    )
    catalogue = Catalogue.from_file(path)
    assert catalogue.points_for(None) == 3
    assert [r.action_type for r in catalogue.rules()] == ["WIN"]
