"""Rebuilding one board's Redis index: staged in bounded chunks, swapped in atomically.

`RedisRankIndex.replace_all` hands this module its pages as chunks of at most `CHUNK` users,
each ONE JSON argument (`chunk`) that the script decodes with Redis's built-in `cjson`:
redis-py's pure-Python packing of seven arguments per user cost more client CPU than all the
rest of a rebuild. The rebuild never blocks Redis for long, whatever the size of the board
(1M users: a thousand or so calls of a few milliseconds each):

1. `SET <board>:rebuild <tmp>` announces it: from then on every `apply`/`remove` on the live
   board also records its user in `<board>:dirty`.
2. Each chunk is ONE script call that writes it under `<tmp>:z|m|n|v` with one variadic
   command per key (`ZADD`, `HSET`), copying the versions the live board holds now
   (`HMGET`; a user without one holds version 0). A call is bounded by `CHUNK`, so no
   single command is huge and no call comes near the client's per-call timeout (measured
   at 1M users: ~5 ms of Redis time per call). `IN_FLIGHT` calls are sent at a time, each on
   its own connection, so Redis serves other clients between any two of them.
3. The dirty set is drained in chunks (`SPOP`), re-copying the versions of users the live
   board changed since their chunk was staged.
4. One script swaps: the last few dirty users, then per key `UNLINK` of the live key and
   `RENAME` of the staged one over it, and a fresh generation marker. `UNLINK` hands a big
   old board to Redis's background thread; a `RENAME` over an existing key would free it
   inside the script (seconds for 1M users, and a client timeout). Readers see the old board
   or the new one, never a mix.

A failed rebuild unlinks its staged keys (best effort); they expire within the hour anyway.
Precondition: the chunks list each user at most once (the store's walk of one snapshot does).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

CHUNK = 1000  # users per staging call: bounds every command of a rebuild (and Lua's unpack)
STAGING_TTL = 3600  # seconds: temporary keys of a crashed rebuild expire on their own
# Staging calls in flight at once, each on its own connection of the client's pool. Not one
# pipeline: Redis runs a connection's pipelined commands back to back, so other clients would
# wait for all of them; separate connections let it serve others between any two chunks.
IN_FLIGHT = 2
MAX_SETTLE_CALLS = 100  # dirty-set drains before the swap takes whatever is left

# KEYS: staged z m n v, live v. ARGV: ttl, then the chunk as JSON (see `chunk`). Only the
# versions held are copied: a user without one holds version 0 for `apply`, and a rebuilt
# board of a million users would otherwise carry a million "0"s.
_STAGE = """
local chunk = cjson.decode(ARGV[2])
local uids = chunk[4]
if #uids == 0 then return 0 end
redis.call('ZADD', KEYS[1], unpack(chunk[1]))
redis.call('HSET', KEYS[2], unpack(chunk[2]))
redis.call('HSET', KEYS[3], unpack(chunk[3]))
local held, versions = redis.call('HMGET', KEYS[5], unpack(uids)), {}
for i = 1, #uids do
  if held[i] then
    versions[#versions + 1] = uids[i]
    versions[#versions + 1] = held[i]
  end
end
if #versions > 0 then redis.call('HSET', KEYS[4], unpack(versions)) end
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ARGV[1]) end
return #uids
"""

# Re-copy the live versions of dirty users on the staged board, for as long as the rebuild
# announced is this one. KEYS: staged m v, live v, dirty, rebuild. ARGV: tmp, count.
_SETTLE_BODY = """
local function settle(staged_m, staged_v, live_v, dirty, count)
  for _, uid in ipairs(redis.call('SPOP', dirty, count)) do
    if redis.call('HEXISTS', staged_m, uid) == 1 then
      redis.call('HSET', staged_v, uid, redis.call('HGET', live_v, uid) or '0')
    end
  end
  return redis.call('SCARD', dirty)
end
"""
_SETTLE = (
    _SETTLE_BODY
    + """
if redis.call('GET', KEYS[5]) ~= ARGV[1] then return 0 end
return settle(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[2])
"""
)

# KEYS: staged z m n v, live z m n v, dirty, rebuild, marker. ARGV: tmp, new marker.
_SWAP = (
    _SETTLE_BODY
    + """
if redis.call('GET', KEYS[10]) == ARGV[1] then
  settle(KEYS[2], KEYS[4], KEYS[8], KEYS[9], redis.call('SCARD', KEYS[9]))
  redis.call('UNLINK', KEYS[9], KEYS[10])
end
local loaded = redis.call('ZCARD', KEYS[1])
for i = 1, 4 do
  redis.call('UNLINK', KEYS[i + 4])
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('RENAME', KEYS[i], KEYS[i + 4])
    redis.call('PERSIST', KEYS[i + 4])
  end
end
redis.call('SET', KEYS[11], ARGV[2])
return loaded
"""
)


class StagedRebuild:
    """The rebuild of one board's keys (names from `key`, as in `realtime.redis_index`)."""

    def __init__(self, client: aioredis.Redis, key: Callable[[str], str]) -> None:
        self._client = client
        self._key = key
        self._live = [key(s) for s in ("z", "m", "n", "v")]
        self._dirty, self._rebuild, self._marker = key("dirty"), key("rebuild"), key("marker")
        self._stage = client.register_script(_STAGE)
        self._settle = client.register_script(_SETTLE)
        self._swap = client.register_script(_SWAP)

    async def run(self, chunks: AsyncIterator[bytes]) -> int:
        """Stage every chunk, then swap; returns the number of users on the new board."""
        tmp = self._key(f"tmp:{uuid.uuid4().hex}")
        staged = staged_keys(tmp)
        async with self._client.pipeline(transaction=True) as begin:
            begin.set(self._rebuild, tmp, ex=STAGING_TTL)
            # Not `begin.unlink`: a cluster pipeline's is a coroutine (it splits keys by slot)
            # and would silently queue nothing.
            begin.execute_command("UNLINK", self._dirty)
            await begin.execute()
        pending: set[asyncio.Future[Any]] = set()
        try:
            # `IN_FLIGHT` calls at a time while the next chunk is read and encoded: Redis is
            # never idle waiting for this process, and still runs one chunk at a time.
            async for chunk in chunks:
                while len(pending) >= IN_FLIGHT:
                    await _first_done(pending)
                stage = self._stage(keys=[*staged, self._live[3]], args=[STAGING_TTL, chunk])
                pending.add(asyncio.ensure_future(stage))
            while pending:
                await _first_done(pending)
            settle_keys = [staged[1], staged[3], self._live[3], self._dirty, self._rebuild]
            for _ in range(MAX_SETTLE_CALLS):
                if int(await self._settle(keys=settle_keys, args=[tmp, CHUNK])) <= CHUNK:
                    break
            keys = [*staged, *self._live, self._dirty, self._rebuild, self._marker]
            return int(await self._swap(keys=keys, args=[tmp, uuid.uuid4().hex]))
        except BaseException:
            for call in pending:
                call.cancel()
            with contextlib.suppress(RedisError):  # best effort: the keys expire anyway
                await self._client.unlink(*staged, self._rebuild, self._dirty)
            raise


def staged_keys(tmp: str) -> list[str]:
    """The staged keys of the rebuild whose `<board>:rebuild` key holds `tmp`."""
    return [f"{tmp}:{s}" for s in ("z", "m", "n", "v")]


async def _first_done(pending: set[asyncio.Future[Any]]) -> None:
    """Wait for one of the calls in flight; raise its error (the caller cancels the rest)."""
    done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    pending.difference_update(done)
    for call in done:
        call.result()


def chunk(entries: Iterable[tuple[str, str, str]]) -> bytes:
    """One staging chunk of `(user_id, member, name)` entries (at most `CHUNK`), shaped for
    `_STAGE`: `[ZADD args, HSET m args, HSET n args, user ids]`, so that the script only
    unpacks (a Lua loop per user would cost Redis about half as much again)."""
    zadd: list[str] = []
    members: list[str] = []
    names: list[str] = []
    uids: list[str] = []
    for user_id, member, name in entries:
        zadd += ("0", member)
        members += (user_id, member)
        names += (user_id, name)
        uids.append(user_id)
    return orjson.dumps([zadd, members, names, uids])
