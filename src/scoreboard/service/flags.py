"""Flags, the admins' side (API.md section 6, docs/RULES.md): list them, resolve them.

- A flag is `open` until resolved; resolving sets `status: resolved` and `resolution`
  (`dismissed`, `banned` or `quarantined`), who (`resolved_by`), when and why (`reason`).
- `resolve(actor, flag_id, action, reason)`: `dismiss` changes nothing else; `ban` and
  `quarantine` make the moderation service's status change (the user's status, its audit
  line, `user.banned` for a ban) in the transaction that resolves the flag, with the
  `resolve_flag` audit line; then every board follows, as after the moderation routes.
  Unknown flag → `NotFound`; resolved already (also when a concurrent resolution won) →
  `FlagResolved` (409); a flag whose user is gone can only be dismissed.
- Paging as the admin audit log's (`service.audit`): newest first, an opaque cursor.
"""

from __future__ import annotations

from dataclasses import dataclass

from scoreboard.domain.errors import FlagResolved, NotFound, ValidationFailed
from scoreboard.domain.rules import OPEN, RESOLUTIONS, RESOLVED
from scoreboard.service.moderation import ModerationService, check_reason
from scoreboard.service.paging import keyset_page
from scoreboard.store.base import AuditEntry, Store
from scoreboard.store.flags import FlagRecord

# The list's `status` filter -> the stored status (None: any).
FILTERS: dict[str, str | None] = {OPEN: OPEN, RESOLVED: RESOLVED, "all": None}


@dataclass(frozen=True, slots=True)
class FlagPage:
    items: list[FlagRecord]
    next_cursor: str | None


class FlagService:
    def __init__(self, store: Store, moderation: ModerationService) -> None:
        self._store = store
        self._moderation = moderation

    async def page(
        self, status: str = OPEN, limit: int = 50, cursor: str | None = None
    ) -> FlagPage:
        """Flags of `status` (open, resolved, all), newest first."""
        if status not in FILTERS:
            raise ValidationFailed(
                "status must be open, resolved or all.", details={"field": "status"}
            )
        items, next_cursor = await keyset_page(
            lambda count, before: self._store.flags_page(FILTERS[status], count, before),
            lambda f: f.flag_id,
            limit,
            cursor,
        )
        return FlagPage(items, next_cursor)

    async def resolve(self, actor: str, flag_id: int, action: str, reason: str) -> FlagRecord:
        """Resolve an open flag by `action` (dismiss, ban, quarantine); the flag afterwards."""
        reason = check_reason(reason)
        resolution = RESOLUTIONS.get(action)
        if resolution is None:
            raise ValidationFailed(
                "action must be dismiss, ban or quarantine.", details={"field": "action"}
            )
        flag = await self._store.get_flag(flag_id)
        if flag is None:
            raise NotFound("No such flag.")
        if flag.status != OPEN:
            raise FlagResolved(f"The flag was resolved already ({flag.resolution}).")
        change = None
        if action != "dismiss":
            user = await self._store.get_user(flag.user_id)
            if user is None or not user.active:
                raise NotFound("The flagged user no longer exists: dismiss the flag.")
            change = self._moderation.change(actor, action, flag.user_id, reason)
        audit = AuditEntry(actor, "resolve_flag", str(flag_id), reason)
        resolved = await self._store.resolve_flag(flag_id, resolution, audit=audit, change=change)
        if resolved is None:  # a concurrent resolution won
            raise FlagResolved()
        if change is not None:
            await self._moderation.follow(flag.user_id, change.status)
        return resolved
