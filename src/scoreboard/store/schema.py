"""Tables of the durable store (SQLAlchemy Core), shared by SQLite and PostgreSQL.

The migrations in `store/migrations/versions/` create exactly these tables; a test compares the
two so they cannot drift apart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


def user_id_type() -> sa.types.TypeEngine[str]:
    """User ids compare in byte order everywhere: SQLite's default BINARY collation, "C" on PG."""
    return sa.String(64).with_variant(sa.String(64, collation="C"), "postgresql")


def event_id_type() -> sa.types.TypeEngine[int]:
    """BIGINT, except on SQLite where only INTEGER PRIMARY KEY autoincrements."""
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes in Python on every database.

    SQLite has no time zones: values are stored as naive UTC and made aware again on the way out.
    A naive datetime handed in is taken to be UTC already.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return aware.replace(tzinfo=None) if dialect.name == "sqlite" else aware

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

users = sa.Table(
    "users",
    metadata,
    sa.Column("user_id", user_id_type(), primary_key=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("display_name", sa.String(128), nullable=False),
    sa.Column("password_hash", sa.String(255), nullable=True),
    sa.Column("avatar_url", sa.String(1024), nullable=True),
    sa.Column("region", sa.String(64), nullable=True),
    sa.Column("external_subject", sa.String(512), nullable=True, unique=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("deleted_at", UtcDateTime(), nullable=True),
    # Moderation (API.md section 6): active | banned | quarantined. Only active users are on
    # the public boards; banned users' writes are refused.
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    # Comma-separated roles ("admin"), "" for none (migration 0005; service/roles.py).
    sa.Column("roles", sa.String(256), nullable=False, server_default=""),
)

user_scores = sa.Table(
    "user_scores",
    metadata,
    sa.Column("user_id", user_id_type(), sa.ForeignKey("users.user_id"), primary_key=True),
    sa.Column("score", sa.BigInteger(), nullable=False),
    # Microseconds since the epoch (UTC) when `score` was reached: the ranking's tie-breaker.
    sa.Column("reached_at_us", sa.BigInteger(), nullable=False),
    # +1 on every change; lets the rank index drop updates that arrive late.
    sa.Column("version", sa.BigInteger(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

# The ranking order (domain.ranking): reads walk this index instead of sorting the table.
sa.Index(
    "ix_user_scores_rank",
    user_scores.c.score.desc(),
    user_scores.c.reached_at_us,
    user_scores.c.user_id,
)

score_events = sa.Table(
    "score_events",
    metadata,
    sa.Column("id", event_id_type(), primary_key=True, autoincrement=True),
    sa.Column("user_id", user_id_type(), sa.ForeignKey("users.user_id"), nullable=False),
    sa.Column("action_type", sa.String(64), nullable=False),
    sa.Column("points", sa.BigInteger(), nullable=False),
    sa.Column("new_score", sa.BigInteger(), nullable=False),
    # The standing the event produced, so that a replay returns exactly the original record.
    sa.Column("reached_at_us", sa.BigInteger(), nullable=False),
    sa.Column("version", sa.BigInteger(), nullable=False),
    sa.Column("idempotency_key", sa.String(255), nullable=True),
    sa.Column("request_hash", sa.String(128), nullable=True),
    sa.Column("action_id", sa.String(64), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    # The region the user had when the event was recorded (boards partitioned by region count
    # it there), and the event's own time, microseconds since the epoch (the instant whose
    # period it counts in): what a board rebuilt from the log needs. NULL `at_us` only on
    # events recorded before migration 0002 (see `store/sql_rebuild.py`).
    sa.Column("region", sa.String(64), nullable=True),
    sa.Column("at_us", sa.BigInteger(), nullable=True),
    # A compensating event (a void, API.md section 6) names the event it voids: at most one.
    sa.Column("voids", sa.BigInteger(), nullable=True),
    # Who wrote the event: "user", "apikey:NAME" or "admin:USER"; NULL on events recorded
    # before migration 0005 (all of them by their user).
    sa.Column("source", sa.String(96), nullable=True),
    # (user_id, id): a user's events newest first by a range scan (migration 0010).
    sa.Index("ix_score_events_user_id", "user_id", "id"),
    # Not unique: on PostgreSQL the table is partitioned by month of `created_at` (migration
    # 0009, `store/sql_partitions.py`), where a unique index must hold the partition key. At
    # most one void per event is `event_voids`' primary key.
    sa.Index("ix_score_events_voids", "voids"),
    # Event ids only grow, even on SQLite: the audit log never reuses an id.
    sqlite_autoincrement=True,
)
# On PostgreSQL the primary key is (id, created_at): a partitioned table's unique keys hold its
# partition key. Ids are still unique (one sequence), so nothing outside the table refers to
# an event through a foreign key: none can point at a partitioned table's `id` alone.

# Each voided event and the compensating event that voids it (API.md section 6): an event is
# voided at most once (the primary key), whichever partition its compensation falls in.
event_voids = sa.Table(
    "event_voids",
    metadata,
    sa.Column("event_id", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("void_id", sa.BigInteger(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("user_id", user_id_type(), sa.ForeignKey("users.user_id"), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("request_hash", sa.String(128), nullable=True),
    # NULL only inside the transaction that claimed the key, until its event is written. No
    # foreign key (see `score_events`): events are never deleted, and the id is the one the
    # event's own INSERT returned, in the same transaction.
    sa.Column("event_id", sa.BigInteger(), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    # Retention (SCOREBOARD_IDEMPOTENCY_RETENTION_DAYS) deletes the oldest keys first, in
    # batches: `store/sql_keys.py`.
    sa.Index("ix_idempotency_keys_created_at", "created_at"),
)


actions = sa.Table(
    "actions",
    metadata,
    sa.Column("action_id", sa.String(64), primary_key=True),
    sa.Column("user_id", user_id_type(), sa.ForeignKey("users.user_id"), nullable=False),
    sa.Column("action_type", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", UtcDateTime(), nullable=False),
    sa.Column("ended_at", UtcDateTime(), nullable=True),
    sa.Column("points", sa.BigInteger(), nullable=True),
    sa.Column("metadata", JSON_TYPE, nullable=False),
    sa.Column("suspicious", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.CheckConstraint("status IN ('started', 'completed', 'cancelled')", name="status"),
    sa.Index("ix_actions_user_id", "user_id"),
)


# One row per user on each list (board, period, region) of a board that is not the total
# (`domain.boards.Board.is_total`: the total is `user_scores`). Rows follow `domain.boards.fold`.
board_scores = sa.Table(
    "board_scores",
    metadata,
    sa.Column("board_id", sa.String(48), primary_key=True),
    sa.Column("period_id", sa.String(16), primary_key=True),
    sa.Column("region", sa.String(64), primary_key=True, server_default=""),
    sa.Column("user_id", user_id_type(), sa.ForeignKey("users.user_id"), primary_key=True),
    sa.Column("score", sa.BigInteger(), nullable=False),
    sa.Column("reached_at_us", sa.BigInteger(), nullable=False),
    # +1 each time an event changes the row (1 when it is created).
    sa.Column("version", sa.BigInteger(), nullable=False),
)

# The ranking order of one list, as `ix_user_scores_rank` for the total.
sa.Index(
    "ix_board_scores_rank",
    board_scores.c.board_id,
    board_scores.c.period_id,
    board_scores.c.region,
    board_scores.c.score.desc(),
    board_scores.c.reached_at_us,
    board_scores.c.user_id,
)
# A user's rows: `views_of_user`, `delete_user`.
sa.Index("ix_board_scores_user_id", board_scores.c.user_id)

# The definition (`Board.fingerprint`) each board's rows were computed with: a board whose
# definition is missing or different here is rebuilt from the log (`backfill_boards`).
board_defs = sa.Table(
    "board_defs",
    metadata,
    sa.Column("board_id", sa.String(48), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("built_at", UtcDateTime(), nullable=False),
)

# Friends lists: `user_id` added `friend_id` (one-way; API.md section 5, "Friends").
friends = sa.Table(
    "friends",
    metadata,
    sa.Column("user_id", user_id_type(), sa.ForeignKey("users.user_id"), primary_key=True),
    sa.Column("friend_id", user_id_type(), sa.ForeignKey("users.user_id"), primary_key=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)

# Signed webhooks (docs/WEBHOOKS.md): the durable outbox, written in the transaction of what
# caused each webhook, and every delivery attempt. A row is pending while `next_attempt_at`
# is set (a claimed row's is its lease), delivered once `delivered_at` is, given up (failed,
# kept) when neither is. `dedupe_key` makes an enqueue idempotent (`period.closed:<board>:
# <period>`); NULL keys never conflict.
webhook_outbox = sa.Table(
    "webhook_outbox",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),  # the payload's `id`: receivers dedupe
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("dedupe_key", sa.String(200), nullable=True, unique=True),
    sa.Column("payload", JSON_TYPE, nullable=False),  # the payload's `data`
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("next_attempt_at", UtcDateTime(), nullable=True),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("delivered_at", UtcDateTime(), nullable=True),
    sa.Column("last_error", sa.String(500), nullable=True),
)
# The due rows, soonest first (`claim`).
sa.Index("ix_webhook_outbox_next_attempt_at", webhook_outbox.c.next_attempt_at)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", event_id_type(), primary_key=True, autoincrement=True),
    sa.Column("outbox_id", sa.String(32), sa.ForeignKey("webhook_outbox.id"), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("status_code", sa.Integer(), nullable=True),  # None: no answer (the error says)
    sa.Column("error", sa.String(500), nullable=True),
    sa.Column("duration_ms", sa.Integer(), nullable=False),
    sqlite_autoincrement=True,  # ids only grow: the log's cursor never sees one reused
)
# A webhook's attempts (the admin log reads by id, newest first: the primary key).
sa.Index("ix_webhook_deliveries_outbox_id", webhook_deliveries.c.outbox_id)

# API keys of the site's backends (`scoreboard apikey create`): the key itself is never stored,
# only the SHA-256 of it (service/apikeys.py says why that is enough). Revoked keys stay, so a
# name is never reused for another key and the audit log's `apikey:NAME` keeps one meaning.
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("revoked_at", UtcDateTime(), nullable=True),
    # Refreshed when a serving process looks the key up (at most once per cache period).
    sa.Column("last_used_at", UtcDateTime(), nullable=True),
    sa.CheckConstraint("role IN ('scorer', 'admin')", name="role"),
)

# Every admin action (API.md section 6): append-only, enforced by triggers (migration 0005),
# as on `score_events`.
admin_audit = sa.Table(
    "admin_audit",
    metadata,
    sa.Column("audit_id", event_id_type(), primary_key=True, autoincrement=True),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("target", sa.String(256), nullable=False),
    sa.Column("reason", sa.String(500), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sqlite_autoincrement=True,
)

# Refresh tokens (API.md section 6, "Sessions"; service/sessions.py): a token is stored only as
# its SHA-256 (hex); a family is one login's chain of rotations, revoked as a whole.
refresh_tokens = sa.Table(
    "refresh_tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("family_id", sa.String(32), nullable=False),
    sa.Column("user_id", user_id_type(), sa.ForeignKey("users.user_id"), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
    sa.Column("used_at", UtcDateTime(), nullable=True),  # rotated: it was exchanged once
    sa.Column("revoked_at", UtcDateTime(), nullable=True),  # logout, or reuse detected
    sa.Index("ix_refresh_tokens_family_id", "family_id"),
    sa.Index("ix_refresh_tokens_user_id", "user_id"),
)

# The anomaly rules' tables live in their own module, on this metadata.
from scoreboard.store import schema_rules  # noqa: E402, F401
