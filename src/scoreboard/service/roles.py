"""Users' roles: granting and withdrawing them (`scoreboard user promote|demote`, audited),
and which roles a verified token carries into a request.

The bound (docs/SECURITY.md, "Admins"): a built-in token grants the roles it names AND the
account still holds. A promotion therefore takes effect with the next token (a login); a
demotion within the account cache's bound (`SCOREBOARD_ACCOUNT_CACHE_SECONDS`, 30 s) in
every process, because roles are read with the account. An external token's roles are those
its identity provider grants (the claim named by `SCOREBOARD_EXTERNAL_ADMIN_CLAIM` holding
`scoreboard:admin`) together with those of its account here.
"""

from __future__ import annotations

from scoreboard.domain.errors import NotFound, ValidationFailed
from scoreboard.service.claims import Claims
from scoreboard.service.principal import ADMIN
from scoreboard.store.base import AuditEntry, Store, UserRecord

ROLES = frozenset({ADMIN})
MAX_REASON = 500


def granted_roles(claims: Claims, user: UserRecord) -> frozenset[str]:
    """The roles of a request made with a token of these claims by this account."""
    if claims.external:
        return claims.roles | user.roles
    return claims.roles & user.roles


class RoleService:
    """Grants and withdraws roles; each change and its audit entry are one transaction."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def promote(self, username: str, *, actor: str, reason: str = "") -> UserRecord:
        """Make the user an admin; `NotFound` when there is no such active user."""
        return await self._change(username, True, actor, reason)

    async def demote(self, username: str, *, actor: str, reason: str = "") -> UserRecord:
        """Withdraw the admin role (tokens already issued lose it within the bound above)."""
        return await self._change(username, False, actor, reason)

    async def _change(self, username: str, granted: bool, actor: str, reason: str) -> UserRecord:
        if len(reason) > MAX_REASON:
            raise ValidationFailed(
                f"reason must be at most {MAX_REASON} characters.", details={"field": "reason"}
            )
        found = await self._store.get_user_by_username(username)
        user = None
        if found is not None and found.active:
            action = "promote" if granted else "demote"
            entry = AuditEntry(actor=actor, action=action, target=found.user_id, reason=reason)
            user = await self._store.set_role(found.user_id, ADMIN, granted, entry)
        if user is None:
            raise NotFound(f"No active account with username {username!r}.")
        return user
