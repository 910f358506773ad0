"""The records the webhook outbox exchanges with the service (`Store`'s outbox methods;
the SQL is `store/sql_outbox.py`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A claimed webhook: what to send, and which attempt this is (1 for the first)."""

    webhook_id: str
    type: str
    data: dict[str, Any]
    created_at: datetime
    attempt: int


@dataclass(frozen=True, slots=True)
class Attempt:
    """How one delivery attempt ended, and what follows: `delivered`, or another attempt at
    `next_attempt_at`, or (neither) the webhook is given up."""

    webhook_id: str
    attempt: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int
    delivered: bool
    next_attempt_at: datetime | None


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One line of the delivery log."""

    delivery_id: int
    webhook_id: str
    type: str
    attempt: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int
