"""The Lua scripts of `realtime.redis_index` (keys and encoding are documented there).

Each script touches only the keys of one board, all sharing its hash tag, and names them all
in KEYS: a Redis Cluster can run it on the board's node. `KEYS` orders, per script:

- `APPLY`, `APPLY_MANY`: z m n v removed rebuild dirty marker;
- `REMOVE`: z m n v removed rebuild dirty;
- `RENAME`: m n;
- reads (`RANGE`, `PAGE`: z n; `ENTRY`: z m n; `COUNT`: z), then the marker when checked.
"""

from __future__ import annotations

# Versions are non-negative decimal strings without leading zeros, compared by length first:
# Lua numbers are doubles and would round versions above 2**53.
# Returns the user's rank afterwards (applied or not), 0 when not on the board, and -1 when
# ARGV[5] == '1' asks for the generation marker (KEYS[8]) and it is gone: a rank from a lost,
# partly refilled index would be wrong.
APPLY = """
local uid, version = ARGV[1], ARGV[4]
if redis.call('SISMEMBER', KEYS[5], uid) == 1 then return 0 end
local newer = true
if version ~= '0' then
  local held = redis.call('HGET', KEYS[4], uid)
  newer = not (held and (#held > #version or (#held == #version and held >= version)))
end
if newer then
  local old = redis.call('HGET', KEYS[2], uid)
  if old then redis.call('ZREM', KEYS[1], old) end
  redis.call('ZADD', KEYS[1], 0, ARGV[2])
  redis.call('HSET', KEYS[2], uid, ARGV[2])
  redis.call('HSET', KEYS[3], uid, ARGV[3])
  redis.call('HSET', KEYS[4], uid, version)
  if redis.call('EXISTS', KEYS[6]) == 1 then redis.call('SADD', KEYS[7], uid) end
end
if ARGV[5] == '1' and redis.call('EXISTS', KEYS[8]) == 0 then return -1 end
local member = redis.call('HGET', KEYS[2], uid)
if not member then return 0 end
return redis.call('ZRANK', KEYS[1], member) + 1
"""

# `APPLY` for a batch: ARGV[1] is the checked flag, then (uid, member, name, version) per
# update, applied in order. Returns each update's user's rank once all are applied (0 when not
# on the board; every one -1 when checked and the marker is gone).
APPLY_MANY = """
local staging = redis.call('EXISTS', KEYS[6]) == 1
local n = (#ARGV - 1) / 4
for i = 0, n - 1 do
  local uid, member, version = ARGV[4 * i + 2], ARGV[4 * i + 3], ARGV[4 * i + 5]
  if redis.call('SISMEMBER', KEYS[5], uid) == 0 then
    local newer = true
    if version ~= '0' then
      local held = redis.call('HGET', KEYS[4], uid)
      newer = not (held and (#held > #version or (#held == #version and held >= version)))
    end
    if newer then
      local old = redis.call('HGET', KEYS[2], uid)
      if old then redis.call('ZREM', KEYS[1], old) end
      redis.call('ZADD', KEYS[1], 0, member)
      redis.call('HSET', KEYS[2], uid, member)
      redis.call('HSET', KEYS[3], uid, ARGV[4 * i + 4])
      redis.call('HSET', KEYS[4], uid, version)
      if staging then redis.call('SADD', KEYS[7], uid) end
    end
  end
end
local out = {}
local lost = ARGV[1] == '1' and redis.call('EXISTS', KEYS[8]) == 0
for i = 0, n - 1 do
  if lost then
    out[i + 1] = -1
  else
    local member = redis.call('HGET', KEYS[2], ARGV[4 * i + 2])
    out[i + 1] = member and (redis.call('ZRANK', KEYS[1], member) + 1) or 0
  end
end
return out
"""

REMOVE = """
local uid = ARGV[1]
redis.call('SADD', KEYS[5], uid)
local old = redis.call('HGET', KEYS[2], uid)
if old then redis.call('ZREM', KEYS[1], old) end
redis.call('HDEL', KEYS[2], uid)
redis.call('HDEL', KEYS[3], uid)
redis.call('HDEL', KEYS[4], uid)
if redis.call('EXISTS', KEYS[6]) == 1 then redis.call('SADD', KEYS[7], uid) end
return 1
"""

RENAME = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"""

# Flat [member, name, ...]; the user id is the member after its 32 hex characters.
NAMES = """
local function with_names(members, names)
  local out = {}
  for i, m in ipairs(members) do
    out[2 * i - 1] = m
    out[2 * i] = redis.call('HGET', names, string.sub(m, 33))
  end
  return out
end
"""

# Prepended to the read scripts of a `checked` index; the marker is their last key.
GUARD = """
if redis.call('EXISTS', KEYS[#KEYS]) == 0 then
  return redis.error_reply('NOINDEX rank index lost (no generation marker)')
end
"""
COUNT = "return redis.call('ZCARD', KEYS[1])"
RANGE = "return with_names(redis.call('ZRANGE', KEYS[1], ARGV[1], ARGV[2]), KEYS[2])"
# [count, member, name, ...]: a page and the board's size from one snapshot.
PAGE = """
local out = with_names(redis.call('ZRANGE', KEYS[1], ARGV[1], ARGV[2]), KEYS[2])
table.insert(out, 1, redis.call('ZCARD', KEYS[1]))
return out
"""

# [first rank - 1, member, name, ...] of the user and `ARGV[2]` neighbours each side, or {}.
ENTRY = """
local member = redis.call('HGET', KEYS[2], ARGV[1])
if not member then return {} end
local rank = redis.call('ZRANK', KEYS[1], member)
if not rank then return {} end
local k = tonumber(ARGV[2])
local start = math.max(0, rank - k)
local out = with_names(redis.call('ZRANGE', KEYS[1], start, rank + k), KEYS[3])
table.insert(out, 1, start)
return out
"""
