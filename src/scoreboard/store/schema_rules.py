"""The anomaly rules' tables (docs/RULES.md), on `store.schema.metadata` (imported at the end
of `store/schema.py`, so the tables are there wherever the schema is). Migration 0008.

- `flags`: one row per (user, rule, window) at most (`uq_flags_user_id`): the store's
  insert-if-absent is what dedupes flags written by several processes.
- `rule_points`: the points each user scored per second (epoch seconds), the sliding
  minute's sums; rows older than the rules need are pruned.
- `rule_addresses`: which accounts scored from which client address, and when last. The
  address is never stored: `address_hash` is an HMAC-SHA256 of it keyed with a key derived
  from the service's secret (`service/rules.py`).
"""

from __future__ import annotations

import sqlalchemy as sa

from scoreboard.store.schema import JSON_TYPE, UtcDateTime, event_id_type, metadata, user_id_type

flags = sa.Table(
    "flags",
    metadata,
    sa.Column("flag_id", event_id_type(), primary_key=True, autoincrement=True),
    sa.Column("user_id", user_id_type(), sa.ForeignKey("users.user_id"), nullable=False),
    sa.Column("rule", sa.String(64), nullable=False),
    # The window the flag is for (`domain.rules`: a UTC minute or hour).
    sa.Column("window_id", sa.String(32), nullable=False),
    sa.Column("detail", JSON_TYPE, nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # open | resolved
    sa.Column("resolution", sa.String(16), nullable=True),  # dismissed | banned | quarantined
    sa.Column("resolved_by", sa.String(128), nullable=True),
    sa.Column("resolved_at", UtcDateTime(), nullable=True),
    sa.Column("reason", sa.String(500), nullable=True),
    sa.UniqueConstraint("user_id", "rule", "window_id", name="uq_flags_user_id"),
    sa.CheckConstraint("status IN ('open', 'resolved')", name="status"),
    sqlite_autoincrement=True,  # ids only grow: the list's cursor never sees one reused
)
# The list by status, newest first; a user's open flags.
sa.Index("ix_flags_status", flags.c.status, flags.c.flag_id)

rule_points = sa.Table(
    "rule_points",
    metadata,
    sa.Column("user_id", user_id_type(), primary_key=True),
    sa.Column("second", sa.BigInteger(), primary_key=True),
    sa.Column("points", sa.BigInteger(), nullable=False),
)
sa.Index("ix_rule_points_second", rule_points.c.second)  # pruning

rule_addresses = sa.Table(
    "rule_addresses",
    metadata,
    sa.Column("address_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", user_id_type(), primary_key=True),
    sa.Column("last_at_us", sa.BigInteger(), nullable=False),
)
sa.Index("ix_rule_addresses_last_at_us", rule_addresses.c.last_at_us)  # pruning
