"""The Redis realtime backends, for deployments of several processes sharing one Redis.

- `RedisRankIndex` (`redis_index`): the rank index of one board, exact for 64-bit scores.
- `RedisRankIndexes` (`redis_indexes`): the shared indexes of many views (boards, periods,
  regions), a batch over all of them in one round trip.
- `RedisBroker` (`redis_broker`): pub/sub between processes with a supervised subscriber.

Both take their client (or URL) from the caller; nothing here is created at import time.
"""

from __future__ import annotations

from scoreboard.realtime.redis_broker import RedisBroker
from scoreboard.realtime.redis_index import RedisRankIndex, decode_member, encode_member
from scoreboard.realtime.redis_indexes import RedisRankIndexes

__all__ = ["RedisBroker", "RedisRankIndex", "RedisRankIndexes", "decode_member", "encode_member"]
