"""`RankIndex` on Redis, shared by every process of a deployment.

Exact order for 64-bit scores: a ZSET score is a double and cannot hold every int64, so every
member has ZSET score 0 and the member itself is a fixed-width sort key that Redis orders by
memcmp (`ZRANK`/`ZRANGE` on equal scores compare members bytewise)::

    member = hex16(2**63 - 1 - score) + hex16(reached_at_us) + user_id.encode()

`2**63 - 1 - score` maps the signed range onto 0..2**64-1, inverted so that ascending members
are descending scores; lowercase fixed-width hex compares like the numbers it encodes; the user
id bytes come last, so memcmp order equals `domain.ranking.sort_key` exactly.

Keys of one board, all sharing the hash tag `{board}` so Lua may touch them together in a
cluster (`<p>` is the prefix)::

    <p>rank:{board}:z        ZSET   members as above, all at score 0
    <p>rank:{board}:m        HASH   user_id -> member
    <p>rank:{board}:n        HASH   user_id -> display_name
    <p>rank:{board}:v        HASH   user_id -> version held (decimal; "0" = unversioned)
    <p>rank:{board}:removed  SET    tombstones: removed users, ignored by later `apply`
    <p>rank:{board}:marker   STRING generation marker (see `marker`)
    <p>rank:{board}:rebuild, :dirty and :tmp:<id>:* exist only while `replace_all` runs

Every public call is one round trip (one Lua script of `realtime.redis_scripts`, or one
command), so reads are consistent snapshots and an update, or a batch of them (`apply_many`),
is atomic.

Errors: the index never swallows them. Every method may raise `redis.exceptions.RedisError`:
`ConnectionError` / `TimeoutError` when Redis is unreachable or slow (the client's socket
timeouts apply), `ResponseError` for a refused command (e.g. OOM under `maxmemory`, READONLY on
a replica). The service decides the fallback (serve from the store, rebuild later).
`ValueError` is raised for a standing outside the encodable range (see `encode_member`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from scoreboard.domain.ranking import SCORE_MAX, SCORE_MIN, RankedEntry, Standing
from scoreboard.realtime import redis_scripts as scripts
from scoreboard.realtime.redis_rebuild import CHUNK, StagedRebuild, chunk

_U64 = 2**64
_HEX = 16  # characters per 64-bit field


KEY_SUFFIXES = ("z", "m", "n", "v", "removed", "marker", "rebuild", "dirty")


@dataclass(frozen=True, slots=True)
class ScriptCall:
    """One script call with its keys and arguments, not sent yet (`RedisRankIndexes` sends
    several in one pipeline as `EVALSHA script.sha`)."""

    script: AsyncScript
    keys: list[str]
    args: list[str | bytes]


def _check_range(limit: int, offset: int) -> None:
    """`ValueError` (the caller's argument, see `RankIndex`) for a range Redis cannot take:
    ZRANGE's indexes are signed 64-bit, and a refused command would look like a broken index."""
    if offset < 0:
        raise ValueError(f"offset must be >= 0: {offset}")
    if offset + max(limit, 1) - 1 > SCORE_MAX:
        raise ValueError(f"offset + limit out of the signed 64-bit range: {offset}")


def encode_member(standing: Standing) -> bytes:
    """The sort-key member of a standing; `ValueError` if score is not int64 or
    `reached_at_us` is not in 0..2**64-1."""
    return member_text(standing).encode()


def member_text(standing: Standing) -> str:
    """`encode_member` as text (its UTF-8 encoding), for arguments sent as JSON."""
    if not SCORE_MIN <= standing.score <= SCORE_MAX:
        raise ValueError(f"score out of the signed 64-bit range: {standing.score}")
    if not 0 <= standing.reached_at_us < _U64:
        raise ValueError(f"reached_at_us out of range: {standing.reached_at_us}")
    return f"{SCORE_MAX - standing.score:016x}{standing.reached_at_us:016x}{standing.user_id}"


def decode_member(member: bytes | str) -> tuple[int, str]:
    """`(score, user_id)` of a member made by `encode_member`."""
    raw = member.encode() if isinstance(member, str) else member
    return SCORE_MAX - int(raw[:_HEX], 16), raw[2 * _HEX :].decode()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisRankIndex:
    """`RankIndex` of one board in Redis (see the module docstring for keys and encoding).

    The client belongs to the caller: `close` does not close it. Works with or without
    `decode_responses`.

    `checked`: for an index shared by processes that may outlive a loss of Redis's data.
    Reads then raise `ResponseError` (NOINDEX) when the generation marker is missing, checked
    in the same round trip, and `apply` returns no rank: a lost index, perhaps partly
    refilled by updates, is never served.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        board: str = "global",
        *,
        checked: bool = False,
    ) -> None:
        self._client = client
        base = f"{prefix}rank:{{{board}}}"
        self._base = base
        self._z, self._m, self._n, self._v = (self.key(s) for s in ("z", "m", "n", "v"))
        self._removed = self.key("removed")
        self._marker = self.key("marker")
        self._rebuild = self.key("rebuild")
        self._dirty = self.key("dirty")
        self._write_keys = [self._z, self._m, self._n, self._v, self._removed]
        self._write_keys += [self._rebuild, self._dirty]
        self._apply_keys = [*self._write_keys, self._marker]
        self._apply_flag = "1" if checked else "0"
        guard, marker = (scripts.GUARD, [self._marker]) if checked else ("", [])
        self._range_keys = [self._z, self._n, *marker]
        self._entry_keys = [self._z, self._m, self._n, *marker]
        self._count_keys = [self._z, *marker]
        self._apply = client.register_script(scripts.APPLY)
        self._apply_many = client.register_script(scripts.APPLY_MANY)
        self._remove = client.register_script(scripts.REMOVE)
        self._rename = client.register_script(scripts.RENAME)
        self._range = client.register_script(guard + scripts.NAMES + scripts.RANGE)
        self._page = client.register_script(guard + scripts.NAMES + scripts.PAGE)
        self._entry = client.register_script(guard + scripts.NAMES + scripts.ENTRY)
        self._count = client.register_script(guard + scripts.COUNT)
        self._rebuilder = StagedRebuild(client, self.key)

    def key(self, suffix: str) -> str:
        """The name of one of this board's keys (`z`, `marker`, ...; see the module doc)."""
        return f"{self._base}:{suffix}"

    async def apply(self, standing: Standing, version: int) -> int | None:
        """Set the user's standing unless they were removed or `version` is not newer than
        the one held; version 0 means unversioned and always applies (as in memory).

        One round trip, which also returns the user's rank afterwards (None when they are not
        on the board, or, when `checked`, when the generation marker is gone)."""
        if version < 0:
            raise ValueError(f"version must be >= 0: {version}")
        member = encode_member(standing)
        args: list[str | bytes] = [standing.user_id, member, standing.display_name]
        args += [str(version), self._apply_flag]
        rank = int(await self._apply(keys=self._apply_keys, args=args))
        return rank if rank > 0 else None

    async def apply_many(self, updates: Sequence[tuple[Standing, int]]) -> list[int | None]:
        """`apply` of every update in order, in one script call (atomic, one round trip),
        with every user's rank once all are applied."""
        if not updates:
            return []
        call = self.apply_many_call(updates)
        return ranks_of(await call.script(keys=call.keys, args=call.args))

    def apply_many_call(self, updates: Sequence[tuple[Standing, int]]) -> ScriptCall:
        """The script call `apply_many(updates)` makes, for the caller to send, e.g. in one
        pipeline with other boards' (its reply: `ranks_of`). It names only this board's keys.
        `ValueError` for a negative version or a standing `encode_member` refuses."""
        args: list[str | bytes] = [self._apply_flag]
        for standing, version in updates:
            if version < 0:
                raise ValueError(f"version must be >= 0: {version}")
            args += [standing.user_id, encode_member(standing), standing.display_name]
            args.append(str(version))
        return ScriptCall(self._apply_many, self._apply_keys, args)

    def key_names(self) -> list[str]:
        """Every fixed key of this board (the module doc's list; staged keys excepted)."""
        return [self.key(suffix) for suffix in KEY_SUFFIXES]

    async def rename(self, user_id: str, display_name: str) -> None:
        """Change the user's name if they are on the board (one round trip)."""
        await self._rename(keys=[self._m, self._n], args=[user_id, display_name])

    async def remove(self, user_id: str) -> None:
        """Drop the user and tombstone them: any later `apply` for them is ignored."""
        await self._remove(keys=self._write_keys, args=[user_id])

    async def restore(self, user_id: str) -> None:
        """Lift the user's tombstone (one command)."""
        await self._client.srem(self._removed, user_id)

    async def top(self, limit: int, offset: int = 0) -> list[RankedEntry]:
        """Entries ranked `offset + 1` .. `offset + limit` (fewer at the end)."""
        _check_range(limit, offset)
        if limit <= 0:
            return []
        reply = await self._range(keys=self._range_keys, args=[offset, offset + limit - 1])
        return _entries(offset + 1, reply)

    async def count(self) -> int:
        return int(await self._count(keys=self._count_keys))

    async def page(self, limit: int, offset: int = 0) -> tuple[list[RankedEntry], int]:
        """`top(limit, offset)` and `count()` in one script call (one snapshot)."""
        _check_range(limit, offset)
        if limit <= 0:
            return [], await self.count()
        reply = await self._page(keys=self._range_keys, args=[offset, offset + limit - 1])
        return _entries(offset + 1, reply[1:]), int(reply[0])

    async def entry_of(self, user_id: str) -> RankedEntry | None:
        entries = await self.around(user_id, 0)
        return entries[0] if entries else None

    async def around(self, user_id: str, neighbours: int) -> list[RankedEntry]:
        """The user's entry with up to `neighbours` entries above and below; [] if absent."""
        reply = await self._entry(keys=self._entry_keys, args=[user_id, max(0, neighbours)])
        return _entries(int(reply[0]) + 1, reply[1:]) if reply else []

    async def is_empty(self) -> bool:
        """True when the board holds no entry (a new board, or one Redis lost)."""
        return await self.count() == 0

    async def marker(self) -> str | None:
        """The generation marker, or None when it is missing.

        `replace_all` sets it to a fresh token in the same atomic step as its swap, so a
        present marker means "a complete rebuild landed and Redis has not lost it since".
        At startup the service compares it with what it expects (present, or the value it
        stored with `set_marker`): None after a restart of a Redis without persistence, or a
        flush, means the index must be rebuilt from the store. Run Redis with
        `maxmemory-policy noeviction` so keys are never lost one by one.
        """
        value = await self._client.get(self._marker)
        return None if value is None else _text(value)

    async def set_marker(self, value: str) -> None:
        """Set the generation marker to a value of the caller's choosing."""
        await self._client.set(self._marker, value)

    async def replace_all(self, pages: AsyncIterator[list[Standing]]) -> int:
        """Rebuild from the store's pages (each user at most once); returns the number of
        entries loaded.

        Staged under temporary keys in chunks of at most `redis_rebuild.CHUNK` users (one
        bounded script call each, never blocking Redis for long), then swapped in by one
        script, so readers see the old board or the new one, never a partial one (see
        `realtime.redis_rebuild`). Held versions are kept for users present in the new board
        (also versions applied while the rebuild ran), others start at 0. Tombstones are
        kept. As in memory, a standing applied while the rebuild runs is replaced by the
        store's one; the marker gets a fresh generation token. Run one rebuild of a board at
        a time; a failed one cleans up, or its keys expire within the hour.
        """
        return await self._rebuilder.run(_chunks(pages))

    async def close(self) -> None:
        """Nothing to release: the client belongs to the caller."""
        return None


async def _chunks(pages: AsyncIterator[list[Standing]]) -> AsyncIterator[bytes]:
    """Pages as staging chunks of at most `CHUNK` users (see `redis_rebuild.chunk`)."""
    async for page in pages:
        for start in range(0, len(page), CHUNK):
            part = page[start : start + CHUNK]
            yield chunk((s.user_id, member_text(s), s.display_name) for s in part)


def ranks_of(reply: Sequence[Any]) -> list[int | None]:
    """The ranks of an `APPLY_MANY` reply: 0 (not on the board) and -1 (lost) are None."""
    return [rank if rank > 0 else None for rank in map(int, reply)]


def _entries(first_rank: int, reply: Sequence[Any]) -> list[RankedEntry]:
    """RankedEntries from a flat `[member, name, member, name, ...]` reply."""
    entries = []
    for i in range(0, len(reply), 2):
        score, user_id = decode_member(reply[i])
        name = reply[i + 1]
        entries.append(RankedEntry(first_rank + i // 2, user_id, _text(name or b""), score))
    return entries
