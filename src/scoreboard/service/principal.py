"""Who is calling: a user (their token, built-in or external) or an API key of the site's
backend. Every route sees one `Principal`; what it may do follows from `kind` and `roles`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ADMIN = "admin"
# API keys start with this (`service.apikeys`): a bearer token of this form is a key, never a
# JWT, so the two are told apart without trying both.
API_KEY_PREFIX = "sbk_"

PrincipalKind = Literal["user", "apikey"]


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of one request or WebSocket connection.

    A user: `user_id`, `display_name`, their token's expiry, and the roles they hold now
    (`service.roles.granted_roles`). An API key (`kind` "apikey"): `key_name`, its role as
    its one role ("scorer" or "admin"), no user (`user_id` ""), no expiry (until revoked).
    """

    user_id: str
    display_name: str
    expires_at: float  # epoch seconds; a live connection is closed when it passes
    external: bool
    roles: frozenset[str] = frozenset()
    kind: PrincipalKind = "user"
    key_name: str | None = None

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.roles

    @property
    def actor(self) -> str:
        """How the audit log and the events' `source` name this caller: the user id, or
        `apikey:NAME`."""
        return f"apikey:{self.key_name}" if self.kind == "apikey" else self.user_id
