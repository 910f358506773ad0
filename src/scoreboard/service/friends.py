"""Friends: the users a user added, for the friends leaderboard (API.md section 5).

A friendship is one-way (the caller's list; nobody is asked), idempotent to add or remove,
and bounded: at most `MAX_FRIENDS` per user.
"""

from __future__ import annotations

from scoreboard.domain.errors import NotFound, ValidationFailed
from scoreboard.service.targets import MAX_FRIENDS
from scoreboard.store.base import Store, UserRecord


class FriendService:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def add(self, user_id: str, friend_id: str) -> None:
        if friend_id == user_id:
            raise ValidationFailed("You cannot add yourself.", details={"field": "user_id"})
        friend = await self._store.get_user(friend_id)
        if friend is None or not friend.active:
            raise NotFound("No such user.")
        if not await self._store.add_friend(user_id, friend_id, MAX_FRIENDS):
            raise ValidationFailed(
                f"A friends list holds at most {MAX_FRIENDS} users.", details={"field": "user_id"}
            )

    async def remove(self, user_id: str, friend_id: str) -> None:
        await self._store.remove_friend(user_id, friend_id)

    async def list(self, user_id: str) -> list[UserRecord]:
        """The caller's friends who still have an account, by user id."""
        return await self._store.friends_of(user_id)
