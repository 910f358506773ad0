"""The anomaly rules' side of the store (docs/RULES.md): the records it exchanges with
`service/rules.py` and `service/flags.py`, and its protocol (`FlagStore`, part of `Store`;
the SQL is `store/sql_flags.py`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from scoreboard.domain.rules import Trip

if TYPE_CHECKING:  # store/base.py imports this module
    from scoreboard.store.base import AuditEntry


@dataclass(frozen=True, slots=True)
class Activity:
    """A committed score event as the rules see it: whose, when (µs since the epoch), its
    points, and the keyed hash of the client address it came from (None: not known, or a
    server write)."""

    user_id: str
    at_us: int
    points: int
    address_hash: str | None = None


@dataclass(frozen=True, slots=True)
class Tally:
    """What the store counted for one `Activity`: the user's points in the sliding minute
    ending with its second, and the distinct accounts that scored from its address in the
    hour up to now (None without an address)."""

    points_in_minute: int
    accounts: int | None


@dataclass(frozen=True, slots=True)
class FlagRecord:
    flag_id: int
    user_id: str
    rule: str
    window_id: str
    detail: dict[str, Any]
    created_at: datetime
    status: str  # open | resolved
    resolution: str | None = None  # dismissed | banned | quarantined
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A moderation status change to make in the transaction that resolves a flag: the
    user's new status, its audit line and its webhook (type, data), as `Store.set_status`."""

    user_id: str
    status: str
    audit: AuditEntry
    webhook: tuple[str, Mapping[str, Any]] | None = None


class FlagStore(Protocol):
    """Contract of the rules' tables.

    - `tally_activity` adds the activities (points per user and second; the accounts seen per
      address, with the time each last scored there) and counts, in one transaction, what the
      rules read for each of them (`Tally`, in order). Concurrent tallies from several
      processes each see what was committed before they started and their own.
    - `add_flags` writes each trip as an open flag unless its (user, rule, window) has one
      (insert-if-absent: of any number of concurrent writers exactly one row is written),
      and for each flag written, a `webhook_type` webhook in the same transaction. Only the
      flags written are returned.
    - `resolve_flag` resolves an open flag, appends `audit` and makes `change` (when given)
      in one transaction; None when the flag is not open (unknown or resolved already).
    """

    async def tally_activity(self, activities: Sequence[Activity]) -> list[Tally]: ...

    async def add_flags(
        self, trips: Sequence[Trip], *, webhook_type: str | None = None
    ) -> list[FlagRecord]: ...

    async def get_flag(self, flag_id: int) -> FlagRecord | None: ...

    async def flags_page(
        self, status: str | None, limit: int, before: int | None = None
    ) -> list[FlagRecord]:
        """At most `limit` flags of `status` (None: any), newest first, ids below `before`."""
        ...

    async def resolve_flag(
        self,
        flag_id: int,
        resolution: str,
        *,
        audit: AuditEntry,
        change: StatusChange | None = None,
    ) -> FlagRecord | None: ...

    async def open_flags_of(self, user_id: str) -> int: ...

    async def prune_rule_activity(self, before_us: int) -> int:
        """Delete the activity older than `before_us` (the rules never read it again); rows."""
        ...
