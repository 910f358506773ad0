"""Friends lists.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04

Self-contained on purpose (no import of store/schema.py), like 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _user_id() -> sa.types.TypeEngine[str]:
    return sa.String(64).with_variant(sa.String(64, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "friends",
        sa.Column("user_id", _user_id(), nullable=False),
        sa.Column("friend_id", _user_id(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.user_id"], name="fk_friends_user_id_users"),
        sa.ForeignKeyConstraint(
            ["friend_id"], ["users.user_id"], name="fk_friends_friend_id_users"
        ),
        sa.PrimaryKeyConstraint("user_id", "friend_id", name="pk_friends"),
    )


def downgrade() -> None:
    op.drop_table("friends")
