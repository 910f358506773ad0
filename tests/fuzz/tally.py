"""The fuzz suite's tally (operations, requests, 5xx, violations), printed at the end of a run.

Under pytest-xdist each worker counts its own; the root conftest sends a worker's tally to the
controller when the worker finishes (`merge`) and prints the whole of it there (`line`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

TALLY: Counter[str] = Counter()  # test-session bookkeeping of this process
_OPERATION = "operation "


def operation(label: str) -> str:
    """The key recording that `label` was fuzzed (counted once however often it is seen)."""
    return f"{_OPERATION}{label}"


def merge(other: Mapping[str, int]) -> None:
    """Add another process's tally: operations as a union, every count summed."""
    for key, value in other.items():
        if key.startswith(_OPERATION):
            TALLY[key] = 1
        else:
            TALLY[key] += value


def line() -> str | None:
    """The summary line, or None when nothing was fuzzed."""
    if not TALLY:
        return None
    operations = sum(1 for key in TALLY if key.startswith(_OPERATION))
    counts = ", ".join(f"{k}={TALLY[k]}" for k in ("requests", "5xx", "violations"))
    return f"schemathesis tally: operations={operations}, {counts}"
