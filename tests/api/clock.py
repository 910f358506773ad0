"""A clock the tests move: periods and event times follow it, nothing sleeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scoreboard.domain.boards import to_us


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self.now_us = to_us(start or datetime(2026, 12, 2, 12, tzinfo=UTC))

    def __call__(self) -> int:
        return self.now_us

    def set(self, moment: datetime) -> None:
        self.now_us = to_us(moment)

    def advance(self, seconds: float) -> None:
        self.now_us += int(timedelta(seconds=seconds) / timedelta(microseconds=1))
