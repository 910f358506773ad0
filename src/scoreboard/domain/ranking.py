"""The one ranking order, shared by SQL, the in-memory index and Redis.

Higher score first; on equal scores the user who reached that score first (smaller
`reached_at_us`, microseconds since the Unix epoch, UTC) ranks higher; then user id ascending
(byte order). Ranks are unique and start at 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

SCORE_MIN: Final = -(2**63)
SCORE_MAX: Final = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Standing:
    """A user's standing on a board: what the rank index stores per user."""

    user_id: str
    display_name: str
    score: int
    reached_at_us: int

    def sort_key(self) -> tuple[int, int, bytes]:
        return sort_key(self.score, self.reached_at_us, self.user_id)


@dataclass(frozen=True, slots=True)
class RankedEntry:
    """A standing with its rank, as reads return it."""

    rank: int
    user_id: str
    display_name: str
    score: int

    def as_dict(self) -> dict[str, object]:
        return {
            "rank": self.rank,
            "user_id": self.user_id,
            "display_name": self.display_name,
            "score": self.score,
        }


def sort_key(score: int, reached_at_us: int, user_id: str) -> tuple[int, int, bytes]:
    """Ascending key: sorting by it yields rank order."""
    return (-score, reached_at_us, user_id.encode())


def rank_all(standings: list[Standing]) -> list[RankedEntry]:
    """Reference implementation of the order (used by tests and small boards)."""
    ordered = sorted(standings, key=Standing.sort_key)
    return [RankedEntry(i + 1, s.user_id, s.display_name, s.score) for i, s in enumerate(ordered)]
