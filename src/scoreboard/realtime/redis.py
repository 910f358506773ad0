"""The Redis realtime backends, for deployments of several processes sharing one Redis.

- `RedisRankIndex` (`redis_index`): the rank index of one board, exact for 64-bit scores.
- `RedisBroker` (`redis_broker`): pub/sub between processes with a supervised subscriber.

Both take their client (or URL) from the caller; nothing here is created at import time.
"""

from __future__ import annotations

from scoreboard.realtime.redis_broker import RedisBroker
from scoreboard.realtime.redis_index import RedisRankIndex, decode_member, encode_member

__all__ = ["RedisBroker", "RedisRankIndex", "decode_member", "encode_member"]
