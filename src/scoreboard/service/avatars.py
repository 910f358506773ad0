"""Avatar URLs of the users on the board (004's `avatar_url`), for its live dialect and its
top-10 route.

The rank index holds names, not profiles, so avatars come from the store: one query for all the
users of a board that are not cached, kept `ttl` seconds. A profile change made by this process
is seen at once (`forget`); one made through another process within `ttl`. When the store cannot
be reached, the last known URLs (or null) are used, and the store is not asked again for `ttl`
seconds: an avatar never fails a read, and an outage does not add a timeout to every live pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from scoreboard.store.base import Store

log = logging.getLogger(__name__)


class AvatarCache:
    def __init__(
        self, store: Store, *, ttl: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self._ttl = ttl
        self._clock = clock
        self._known: dict[str, tuple[str | None, float]] = {}  # user id -> (url, fetched at)
        self._failing = False
        self._quiet_until = float("-inf")  # after a failure, do not ask the store before this

    async def avatars(self, user_ids: Iterable[str]) -> dict[str, str | None]:
        """`user_id -> avatar URL or None` for every id given. Never raises."""
        wanted = list(dict.fromkeys(user_ids))
        now = self._clock()
        stale = [u for u in wanted if u not in self._known or now - self._known[u][1] > self._ttl]
        if stale and now >= self._quiet_until:
            await self._fetch(stale, now)
        return {u: self._known[u][0] if u in self._known else None for u in wanted}

    def forget(self, user_id: str) -> None:
        """This process changed the user's profile: read it again next time."""
        self._known.pop(user_id, None)

    async def _fetch(self, user_ids: list[str], now: float) -> None:
        try:
            users = await self._store.get_users(user_ids)
        except Exception as exc:  # the store is down: keep what is known
            if not self._failing:
                log.warning("avatars: cannot read profiles (%r); using the last known", exc)
            self._failing = True
            self._quiet_until = self._clock() + self._ttl
            return
        self._failing = False
        for user_id in user_ids:
            user = users.get(user_id)
            self._known[user_id] = ((user.avatar_url or None) if user else None, now)
        if len(self._known) > 10_000:  # boards churn: drop what has not been asked for
            horizon = now - self._ttl
            self._known = {u: v for u, v in self._known.items() if v[1] >= horizon}
