"""Sessions: a login's refresh tokens, rotated on every use, and logout (API.md section 6).

A refresh token is `sbr_` and 43 characters of `secrets.token_urlsafe(32)`: 256 random bits,
opaque (nothing in it but chance), recognizable in a leaked log or a secret scanner by its
prefix. The store keeps only its SHA-256. A slow password hash (Argon2) would add nothing:
it exists to make guessing a low-entropy password from its hash expensive, and nobody can
search 2^256 candidates however fast the hash; a fast unsalted hash also lets the store find
the token by its hash (the primary key), where a salted one would need a scan.

A *family* is one login's chain: each refresh marks the token used and issues the next one of
the family, living `ttl_seconds` from then (so a session ends after that long unused). The
decisions where the contract leaves room:
- A used token presented again revokes the family (401): a copy of the token is in other
  hands, and the server cannot tell which presenter is the thief. This includes the loser of
  two concurrent refreshes of one token: a client must not refresh twice at once.
- Logout answers 204 for any well-formed token, known or not, so it is idempotent (a retry
  after a lost answer is fine) and tells a caller nothing about a token it holds.
- Refreshes and logouts share one rate limit per client address (`refresh-ip`): guessing is
  hopeless, but each attempt costs a database write.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from scoreboard.domain.boards import from_us
from scoreboard.domain.errors import Unauthenticated
from scoreboard.realtime.base import RateLimiter
from scoreboard.service.identity import IdentityService
from scoreboard.service.limits import enforce
from scoreboard.service.targets import Clock, system_clock
from scoreboard.store.base import Store

PREFIX = "sbr_"
MAX_LENGTH = 128  # a token is 47 characters; a longer value is refused unread


@dataclass(frozen=True, slots=True)
class Session:
    """What a login or a refresh answers."""

    access_token: str
    expires_in: int  # the access token's lifetime, seconds
    refresh_token: str


def new_refresh_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class SessionService:
    """Owns the refresh token rules; `identity` checks passwords and mints access tokens.

    `clock`: the service's clock (microseconds since the epoch), which dates tokens and
    decides their expiry (tests move it).
    """

    store: Store
    identity: IdentityService
    limiter: RateLimiter
    refresh_limit: str  # per client address, refreshes and logouts together
    ttl_seconds: int
    clock: Clock = system_clock

    async def login(self, username: str, password: str, *, client: str) -> Session:
        """`IdentityService.sign_in`'s refusals, or an access token and the first refresh
        token of a new family."""
        user = await self.identity.sign_in(username, password, client=client)
        access_token, expires_in = self.identity.issue(user)
        refresh_token, now = new_refresh_token(), self._now()
        await self.store.add_refresh_token(
            token_hash(refresh_token),
            family_id=secrets.token_hex(16),
            user_id=user.user_id,
            created_at=now,
            expires_at=self._expiry(now),
        )
        return Session(access_token, expires_in, refresh_token)

    async def refresh(self, refresh_token: str, *, client: str) -> Session:
        """A new access token and the family's next refresh token. `Unauthenticated` for a
        token unknown, expired, revoked or of a deleted account, and for a used one (whose
        family this revokes)."""
        await enforce(self.limiter, self.refresh_limit, "refresh-ip", client)
        if not _well_formed(refresh_token):
            raise Unauthenticated("Unknown refresh token.")
        successor, now = new_refresh_token(), self._now()
        rotation = await self.store.rotate_refresh_token(
            token_hash(refresh_token),
            token_hash(successor),
            now=now,
            expires_at=self._expiry(now),
        )
        if rotation.outcome == "reused":
            raise Unauthenticated("Refresh token already used: every session of it is ended.")
        if rotation.user is None:
            raise Unauthenticated("Refresh token unknown, expired or revoked.")
        access_token, expires_in = self.identity.issue(rotation.user)
        return Session(access_token, expires_in, successor)

    async def logout(self, refresh_token: str, *, client: str) -> None:
        """End the session: every token of the family is revoked. Unknown tokens too end
        nothing without an error (see the module docstring)."""
        await enforce(self.limiter, self.refresh_limit, "refresh-ip", client)
        if _well_formed(refresh_token):
            await self.store.revoke_refresh_family(token_hash(refresh_token), now=self._now())

    def _now(self) -> datetime:
        return from_us(self.clock())

    def _expiry(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.ttl_seconds)


def _well_formed(token: str) -> bool:
    return isinstance(token, str) and token.startswith(PREFIX) and len(token) <= MAX_LENGTH
