"""The one clock and timestamp format of the service: aware UTC datetimes, written as RFC 3339
UTC with millisecond precision (`2025-11-13T05:21:34.123Z`) everywhere a time is sent."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_rfc3339() -> str:
    return rfc3339(utcnow())
