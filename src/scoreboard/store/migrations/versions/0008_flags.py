"""Anomaly rules: flags, each user's points per second, and the accounts seen per client
address (keyed hash, never the address). docs/RULES.md.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-10

Self-contained on purpose (no import of store/schema.py), like 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _user_id() -> sa.types.TypeEngine[str]:
    return sa.String(64).with_variant(sa.String(64, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "flags",
        sa.Column(
            "flag_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("user_id", _user_id(), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("window_id", sa.String(32), nullable=False),
        sa.Column(
            "detail", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("resolution", sa.String(16), nullable=True),
        sa.Column("resolved_by", sa.String(128), nullable=True),
        sa.Column("resolved_at", _ts(), nullable=True),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.user_id"], name="fk_flags_user_id_users"),
        sa.PrimaryKeyConstraint("flag_id", name="pk_flags"),
        sa.UniqueConstraint("user_id", "rule", "window_id", name="uq_flags_user_id"),
        sa.CheckConstraint("status IN ('open', 'resolved')", name="ck_flags_status"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_flags_status", "flags", ["status", "flag_id"])
    op.create_table(
        "rule_points",
        sa.Column("user_id", _user_id(), nullable=False),
        sa.Column("second", sa.BigInteger(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "second", name="pk_rule_points"),
    )
    op.create_index("ix_rule_points_second", "rule_points", ["second"])
    op.create_table(
        "rule_addresses",
        sa.Column("address_hash", sa.String(64), nullable=False),
        sa.Column("user_id", _user_id(), nullable=False),
        sa.Column("last_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("address_hash", "user_id", name="pk_rule_addresses"),
    )
    op.create_index("ix_rule_addresses_last_at_us", "rule_addresses", ["last_at_us"])


def downgrade() -> None:
    op.drop_index("ix_rule_addresses_last_at_us", table_name="rule_addresses")
    op.drop_table("rule_addresses")
    op.drop_index("ix_rule_points_second", table_name="rule_points")
    op.drop_table("rule_points")
    op.drop_index("ix_flags_status", table_name="flags")
    op.drop_table("flags")
