"""The caller's profile: display name, avatar URL and region (the fields the specifications
show on users). A new display name is written to the store, then shown on the rank index (one
index call, no rebuild) and announced like a score change, so live boards show it at once; a new
avatar is read again by this process's avatar cache."""

from __future__ import annotations

from scoreboard.domain.errors import NotFound
from scoreboard.service.avatars import AvatarCache
from scoreboard.service.identity import check_display_name
from scoreboard.service.leaderboard import LeaderboardService
from scoreboard.store.base import Store, UserRecord


class ProfileService:
    def __init__(self, store: Store, board: LeaderboardService, avatars: AvatarCache) -> None:
        self._store = store
        self._board = board
        self._avatars = avatars

    async def get(self, user_id: str) -> UserRecord:
        """The active user's record; `NotFound` for a deleted or unknown one."""
        return _found(await self._store.get_user(user_id))

    async def update(
        self,
        user_id: str,
        *,
        display_name: str | None = None,
        avatar_url: str | None = None,
        region: str | None = None,
    ) -> UserRecord:
        """Store the given fields (None: unchanged; "" clears the avatar or region). The
        display name follows the registration rule."""
        name = None if display_name is None else check_display_name(display_name, "")
        user = await self._store.update_profile(
            user_id, display_name=name, avatar_url=avatar_url, region=region
        )
        self._avatars.forget(user_id)
        found = _found(user)
        if name is not None:
            await self._board.renamed(user_id, found.display_name)
        return found


def _found(user: UserRecord | None) -> UserRecord:
    if user is None or not user.active:
        raise NotFound("No such user.")
    return user
