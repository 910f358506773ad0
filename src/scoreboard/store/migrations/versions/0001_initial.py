"""Initial schema: users, user_scores, score_events, idempotency_keys, actions.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Self-contained on purpose (no import of store/schema.py): a migration must keep meaning what it
meant when it was written.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _user_id() -> sa.types.TypeEngine[str]:
    # Byte order on PostgreSQL too, as in SQLite, for the ranking's last tie-breaker.
    return sa.String(64).with_variant(sa.String(64, collation="C"), "postgresql")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _fk_user(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["user_id"], ["users.user_id"], name=f"fk_{table}_user_id_users")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("user_id", _user_id(), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(128), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("avatar_url", sa.String(1024), nullable=True),
        sa.Column("region", sa.String(64), nullable=True),
        sa.Column("external_subject", sa.String(512), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("deleted_at", _ts(), nullable=True),
        sa.PrimaryKeyConstraint("user_id", name="pk_users"),
        sa.UniqueConstraint("username", name="uq_users_username"),
        sa.UniqueConstraint("external_subject", name="uq_users_external_subject"),
    )
    op.create_table(
        "user_scores",
        sa.Column("user_id", _user_id(), nullable=False),
        sa.Column("score", sa.BigInteger(), nullable=False),
        sa.Column("reached_at_us", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        _fk_user("user_scores"),
        sa.PrimaryKeyConstraint("user_id", name="pk_user_scores"),
    )
    op.create_index(
        "ix_user_scores_rank",
        "user_scores",
        [sa.text("score DESC"), "reached_at_us", "user_id"],
    )
    op.create_table(
        "score_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("user_id", _user_id(), nullable=False),
        sa.Column("action_type", sa.String(64), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("new_score", sa.BigInteger(), nullable=False),
        sa.Column("reached_at_us", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("request_hash", sa.String(128), nullable=True),
        sa.Column("action_id", sa.String(64), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        _fk_user("score_events"),
        sa.PrimaryKeyConstraint("id", name="pk_score_events"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_score_events_user_id", "score_events", ["user_id"])
    op.create_table(
        "idempotency_keys",
        sa.Column("user_id", _user_id(), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(128), nullable=True),
        sa.Column("event_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"], ["score_events.id"], name="fk_idempotency_keys_event_id_score_events"
        ),
        sa.Column("created_at", _ts(), nullable=False),
        _fk_user("idempotency_keys"),
        sa.PrimaryKeyConstraint("user_id", "key", name="pk_idempotency_keys"),
    )
    op.create_table(
        "actions",
        sa.Column("action_id", sa.String(64), nullable=False),
        sa.Column("user_id", _user_id(), nullable=False),
        sa.Column("action_type", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", _ts(), nullable=False),
        sa.Column("ended_at", _ts(), nullable=True),
        sa.Column("points", sa.BigInteger(), nullable=True),
        sa.Column(
            "metadata", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("suspicious", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.CheckConstraint(
            "status IN ('started', 'completed', 'cancelled')", name="ck_actions_status"
        ),
        _fk_user("actions"),
        sa.PrimaryKeyConstraint("action_id", name="pk_actions"),
    )
    op.create_index("ix_actions_user_id", "actions", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_actions_user_id", table_name="actions")
    op.drop_table("actions")
    op.drop_table("idempotency_keys")
    op.drop_index("ix_score_events_user_id", table_name="score_events")
    op.drop_table("score_events")
    op.drop_index("ix_user_scores_rank", table_name="user_scores")
    op.drop_table("user_scores")
    op.drop_table("users")
