"""Live message dialects of the other specifications (API.md section 4).

Each dialect is one serializer; the hub encodes a change once per dialect in use. The entry
shapes are shared with the REST routes of the same specification, so a client sees the same
fields live and on a read.

Names come from the board's entries: `username` (001, 004) and `handle` (003) are the user's
display name (the public name on every board; it defaults to the username). The rank index
holds no avatars: the 004 dialect gets them in its `prepare`, once per hub pass for the whole
visible board, from an `AvatarSource` (`service.avatars.AvatarCache`: one store query for the
users not cached, never raising), as `GET /api/v1/leaderboard/top10` does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime

import orjson

from scoreboard.domain.ranking import RankedEntry
from scoreboard.realtime.dialects import BoardOnly, Dialect, Items

AvatarSource = Callable[[Iterable[str]], Awaitable[dict[str, str | None]]]


def epoch_ms(moment: str | datetime) -> int:
    """Milliseconds since the epoch, from an RFC 3339 string or an aware datetime."""
    at = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return int(at.timestamp() * 1000)


def _encode(message: dict[str, object]) -> str:
    return orjson.dumps(message).decode()


# -- 001: top_scores_update -------------------------------------------------------------------
def top_score_entry(entry: RankedEntry) -> dict[str, object]:
    return {"userId": entry.user_id, "username": entry.display_name, "score": entry.score}


class TopScoresDialect(BoardOnly):
    """`{"type":"top_scores_update","payload":[{userId, username, score}],"timestamp"}`, the
    whole top list in every message (the first one included)."""

    name = "top_scores_update"

    def snapshot(self, limit: int, items: Items, generated_at: str) -> list[str]:
        payload = [top_score_entry(entry) for entry in items]
        return [_encode({"type": self.name, "payload": payload, "timestamp": generated_at})]

    def update(self, limit: int, previous: Items, items: Items, generated_at: str) -> list[str]:
        return self.snapshot(limit, items, generated_at)


# -- 003: snapshot, then per-entry update / remove ------------------------------------------
def handle_entry(entry: RankedEntry) -> dict[str, object]:
    return {
        "userId": entry.user_id,
        "handle": entry.display_name,
        "score": entry.score,
        "rank": entry.rank,
    }


class Seed003Dialect(BoardOnly):
    """`{"type":"snapshot","top":[{userId, handle, score, rank}]}` first; then, per change, one
    `{"type":"remove","userId"}` for each user who left the top list, followed by one
    `{"type":"update","userId","score","handle","rank"}` for each entry that is new or whose
    score, rank or name changed, best rank first. Applying them in order to the previous list
    gives the new one."""

    name = "seed003"

    def snapshot(self, limit: int, items: Items, generated_at: str) -> list[str]:
        return [_encode({"type": "snapshot", "top": [handle_entry(entry) for entry in items]})]

    def update(self, limit: int, previous: Items, items: Items, generated_at: str) -> list[str]:
        before = {entry.user_id: entry for entry in previous}
        now = {entry.user_id for entry in items}
        removes = [
            _encode({"type": "remove", "userId": entry.user_id})
            for entry in previous
            if entry.user_id not in now
        ]
        updates = [
            _encode({"type": "update", **handle_entry(entry)})
            for entry in items
            if before.get(entry.user_id) != entry
        ]
        return removes + updates


# -- 004: leaderboard_update ----------------------------------------------------------------
def leaderboard_entry(entry: RankedEntry, avatar_url: str | None = None) -> dict[str, object]:
    return {
        "rank": entry.rank,
        "user_id": entry.user_id,
        "username": entry.display_name,
        "score": entry.score,
        "avatar_url": avatar_url,
    }


class LeaderboardUpdateDialect:
    """`{"type":"leaderboard_update","data":{"leaderboard":[{rank, user_id, username, score,
    avatar_url}]},"timestamp": <epoch ms>}`, the whole top list in every message."""

    name = "leaderboard_update"

    def __init__(self, avatars: AvatarSource | None = None) -> None:
        self._source = avatars
        self._avatars: dict[str, str | None] = {}

    async def prepare(self, items: Items) -> None:
        if self._source is not None:
            self._avatars = await self._source(entry.user_id for entry in items)

    def snapshot(self, limit: int, items: Items, generated_at: str) -> list[str]:
        board = [leaderboard_entry(entry, self._avatars.get(entry.user_id)) for entry in items]
        message = {
            "type": self.name,
            "data": {"leaderboard": board},
            "timestamp": epoch_ms(generated_at),
        }
        return [_encode(message)]

    def update(self, limit: int, previous: Items, items: Items, generated_at: str) -> list[str]:
        return self.snapshot(limit, items, generated_at)


def compat_dialects(avatars: AvatarSource | None = None) -> list[Dialect]:
    """The dialects of specifications 001, 003 and 004 (004's avatars from `avatars`)."""
    return [TopScoresDialect(), Seed003Dialect(), LeaderboardUpdateDialect(avatars)]
