"""`SqlStore`'s friends lists (API.md section 5, "Friends"): one row per (user, friend).

A mixin like `store.sql_views.RankedReads`: the methods share the store's engines and guard
and stay on the `Store` protocol without a forwarding layer.
"""

from __future__ import annotations

import contextlib

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scoreboard.domain.times import utcnow
from scoreboard.store.base import UserRecord
from scoreboard.store.engine import Engines, insert
from scoreboard.store.guard import Guard, unit_of_work
from scoreboard.store.records import user_from_row
from scoreboard.store.schema import friends, users


class Friends:
    """The friends methods; `SqlStore` sets the attributes below."""

    _engines: Engines
    _guard: Guard

    @property
    def guard(self) -> Guard:
        return self._guard

    def _begin(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        return self._engines.write.begin()

    @unit_of_work
    async def add_friend(self, user_id: str, friend_id: str, most: int) -> bool:
        """Add `friend_id` to the list of `user_id` (idempotent); False when the list already
        holds `most` others. The user's row is locked first (PostgreSQL), so concurrent adds
        cannot overfill the list."""
        async with self._begin() as conn:
            lock = sa.select(users.c.user_id).where(users.c.user_id == user_id)
            if self._engines.dialect == "postgresql":
                lock = lock.with_for_update(key_share=True)
            await conn.execute(lock)
            held = sa.select(sa.func.count()).where(friends.c.user_id == user_id)
            present = sa.select(friends.c.user_id).where(
                friends.c.user_id == user_id, friends.c.friend_id == friend_id
            )
            if (await conn.execute(present)).first() is not None:
                return True
            if int((await conn.execute(held)).scalar_one()) >= most:
                return False
            row = {"user_id": user_id, "friend_id": friend_id, "created_at": utcnow()}
            stmt = insert(self._engines.dialect, friends).on_conflict_do_nothing(
                index_elements=["user_id", "friend_id"]
            )
            await conn.execute(stmt, [row])
            return True

    @unit_of_work
    async def remove_friend(self, user_id: str, friend_id: str) -> None:
        async with self._begin() as conn:
            await conn.execute(
                sa.delete(friends).where(
                    friends.c.user_id == user_id, friends.c.friend_id == friend_id
                )
            )

    @unit_of_work
    async def friends_of(self, user_id: str) -> list[UserRecord]:
        """The user's friends who still have an account, by user id."""
        stmt = (
            sa.select(users)
            .join(friends, friends.c.friend_id == users.c.user_id)
            .where(friends.c.user_id == user_id, users.c.deleted_at.is_(None))
            .order_by(users.c.user_id)
        )
        async with self._engines.read.begin() as conn:
            return [user_from_row(row) for row in await conn.execute(stmt)]
