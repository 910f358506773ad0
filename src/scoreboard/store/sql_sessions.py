"""`SqlStore`'s refresh tokens (API.md section 6, "Sessions"; `service/sessions.py`).

A mixin like `store.sql_friends.Friends`. One row per token, keyed by the token's SHA-256;
the service never hands the store a token itself.

Why exactly one of two concurrent exchanges of a token rotates: the exchange is one
conditional `UPDATE ... SET used_at WHERE used_at IS NULL ...`. On PostgreSQL the second
`UPDATE` waits for the first's row lock and re-checks its condition on the committed row
(then `used_at` is set: no row); on SQLite writes are serialized (`BEGIN IMMEDIATE`).
Why a revocation is final: a family's tokens are all marked revoked, and an exchange also
requires that no token of its family is revoked, so a token minted by a rotation that
committed while the family was being revoked (outside the revoking statement's snapshot on
PostgreSQL) is refused all the same.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from scoreboard.store.base import Rotation
from scoreboard.store.engine import Engines
from scoreboard.store.guard import Guard, unit_of_work
from scoreboard.store.schema import refresh_tokens, users
from scoreboard.store.sql_users import find_user

tokens = refresh_tokens.c
family_member = refresh_tokens.alias("family_member")


class Sessions:
    """The refresh token methods; `SqlStore` sets the attributes below."""

    _engines: Engines
    _guard: Guard

    @property
    def guard(self) -> Guard:
        return self._guard

    @unit_of_work
    async def add_refresh_token(
        self,
        token_hash: str,
        *,
        family_id: str,
        user_id: str,
        created_at: datetime,
        expires_at: datetime,
    ) -> None:
        row = {
            "token_hash": token_hash,
            "family_id": family_id,
            "user_id": user_id,
            "created_at": created_at,
            "expires_at": expires_at,
        }
        async with self._engines.write.begin() as conn:
            await conn.execute(sa.insert(refresh_tokens), [row])

    @unit_of_work
    async def rotate_refresh_token(
        self, token_hash: str, new_hash: str, *, now: datetime, expires_at: datetime
    ) -> Rotation:
        """See `Store.rotate_refresh_token` and the module docstring."""
        active_user = sa.exists().where(
            users.c.user_id == tokens.user_id,
            users.c.deleted_at.is_(None),
            users.c.status != "banned",
        )
        family_revoked = sa.exists().where(
            family_member.c.family_id == tokens.family_id, family_member.c.revoked_at.is_not(None)
        )
        exchange = (
            sa.update(refresh_tokens)
            .where(
                tokens.token_hash == token_hash,
                tokens.used_at.is_(None),
                tokens.revoked_at.is_(None),
                tokens.expires_at > now,
                active_user,
                ~family_revoked,
            )
            .values(used_at=now)
            .returning(tokens.family_id, tokens.user_id)
        )
        async with self._engines.write.begin() as conn:
            rotated = (await conn.execute(exchange)).first()
            if rotated is not None:
                family_id, user_id = rotated
                row = {
                    "token_hash": new_hash,
                    "family_id": family_id,
                    "user_id": user_id,
                    "created_at": now,
                    "expires_at": expires_at,
                }
                await conn.execute(sa.insert(refresh_tokens), [row])
                return Rotation("rotated", await find_user(conn, users.c.user_id == user_id))
            seen = sa.select(tokens.family_id, tokens.used_at).where(
                tokens.token_hash == token_hash
            )
            known = (await conn.execute(seen)).first()
            if known is None or known.used_at is None:
                return Rotation("refused")
            await conn.execute(_revoke(known.family_id, now))
            return Rotation("reused")

    @unit_of_work
    async def revoke_refresh_family(self, token_hash: str, *, now: datetime) -> bool:
        seen = sa.select(tokens.family_id).where(tokens.token_hash == token_hash)
        async with self._engines.write.begin() as conn:
            family_id = (await conn.execute(seen)).scalar()
            if family_id is None:
                return False
            await conn.execute(_revoke(family_id, now))
            return True


def revoke_user_tokens(user_id: str, now: datetime) -> sa.Update:
    """Revoke every refresh token of the user, every family (a ban, inside the ban's own
    transaction: `store.sql_moderation`). A rotation committed concurrently mints a token
    this statement may not see, but its family has a revoked token now, so it never rotates
    (the module docstring)."""
    return (
        sa.update(refresh_tokens)
        .where(tokens.user_id == user_id, tokens.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def _revoke(family_id: str, now: datetime) -> sa.Update:
    return (
        sa.update(refresh_tokens)
        .where(tokens.family_id == family_id, tokens.revoked_at.is_(None))
        .values(revoked_at=now)
    )
