"""The admin audit log (API.md section 6): every admin action appended, read newest first.

Append-only: nothing updates or deletes an entry (the database refuses it too, migration
0005). `AuditLog.append` is its own transaction; a store transaction that acts on an admin's
behalf appends in the same transaction instead, with `store.sql_admin.append_audit(conn, ...)`
(as `Store.set_role` does), so the log holds exactly the actions that happened.

Paging: `page(limit, cursor)` answers `limit` entries and an opaque `next_cursor` (None at the
end); `service.paging` owns the cursors and the limit's bounds.
"""

from __future__ import annotations

from dataclasses import dataclass

from scoreboard.domain.errors import ValidationFailed
from scoreboard.service.paging import keyset_page
from scoreboard.store.base import AuditEntry, AuditRecord, Store

ACTIONS = frozenset(
    {"ban", "unban", "quarantine", "release", "void", "adjust", "resolve_flag", "promote", "demote"}
)
MAX_REASON = 500


@dataclass(frozen=True, slots=True)
class AuditPage:
    items: list[AuditRecord]
    next_cursor: str | None


class AuditLog:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def append(self, actor: str, action: str, target: str, reason: str) -> AuditRecord:
        """Append one admin action. `action` is one of `ACTIONS`; `reason` at most 500."""
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}")  # a caller's bug, not input
        if len(reason) > MAX_REASON:
            raise ValidationFailed(
                f"reason must be at most {MAX_REASON} characters.", details={"field": "reason"}
            )
        return await self._store.append_audit(AuditEntry(actor, action, target, reason))

    async def page(self, limit: int = 50, cursor: str | None = None) -> AuditPage:
        """Newest first; `limit` 1-100, `cursor` from a previous page's `next_cursor`."""
        items, next_cursor = await keyset_page(
            self._store.audit_page, lambda a: a.audit_id, limit, cursor
        )
        return AuditPage(items, next_cursor)
