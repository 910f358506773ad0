"""The records of the event-log query (`Store.event_log`; the SQL is `store/sql_event_log.py`,
the rules `service/event_log.py`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Which events: every filter given must hold (None: any). `since` inclusive, `until`
    exclusive, compared with the event's `created_at`; both aware datetimes."""

    user_id: str | None = None
    action_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """One score event as the log holds it. `voids`: the event a compensation voids;
    `voided_by`: the compensation that voids this one (None: not voided). `source`: who wrote
    it, `user`, `apikey:NAME` or `admin:USER` (`user` for events older than the column)."""

    event_id: int
    user_id: str
    action_type: str
    points: int
    created_at: datetime
    idempotency_key: str | None
    voids: int | None
    voided_by: int | None
    source: str
