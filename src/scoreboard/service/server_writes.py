"""Trusted server-to-server writes (API.md section 6): the site's backend records a score event
for one of its users with an API key, through exactly the path of the user's own write
(`ScoringService.record`: catalogue points, the user's idempotency keys and rate limits,
every board), the key's name kept on the event as its `source`."""

from __future__ import annotations

from scoreboard.domain.errors import Forbidden, NotFound, Unauthenticated
from scoreboard.service.principal import Principal
from scoreboard.service.scoring import ScoreResult, ScoringService
from scoreboard.store.base import Store

WRITER_ROLES = frozenset({"scorer", "admin"})


class ServerWrites:
    def __init__(self, store: Store, scoring: ScoringService) -> None:
        self._store = store
        self._scoring = scoring

    async def record(
        self,
        caller: Principal,
        user_id: str,
        action_type: str,
        *,
        idempotency_key: str | None = None,
    ) -> ScoreResult:
        """Record `action_type` for `user_id` on behalf of `caller`, a scorer or admin key.

        `Forbidden` for any other caller (a user's token, even an admin's: a user writes
        their own events through `POST /api/v1/scores/events`); `NotFound` for a user who
        does not exist or deleted their account (also when that happens while the event is
        queued: the store refuses the write in its transaction)."""
        if caller.kind != "apikey" or not caller.roles & WRITER_ROLES:
            raise Forbidden("Only a scorer or admin API key may write a user's score events.")
        user = await self._store.get_user(user_id)
        if user is None or not user.active:
            raise NotFound("No such user.")
        try:
            return await self._scoring.record(
                user_id, action_type, idempotency_key=idempotency_key, source=caller.actor
            )
        except Unauthenticated as exc:  # the store found the user gone at commit
            raise NotFound("No such user.") from exc
