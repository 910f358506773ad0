"""Boards: board_scores, board_defs, and the region and time of each score event.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04

Events recorded before this revision get, as their region, the region their user has now (the
best there is: the region at the time was not kept), and as their time `reached_at_us` where
that is the event's time (it moved the score, or was the user's first); the others (later
zero-point events) keep `at_us` NULL and a rebuild takes their batch time (`created_at`).

Self-contained on purpose (no import of store/schema.py), like 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _user_id() -> sa.types.TypeEngine[str]:
    return sa.String(64).with_variant(sa.String(64, collation="C"), "postgresql")


def upgrade() -> None:
    op.add_column("score_events", sa.Column("region", sa.String(64), nullable=True))
    op.add_column("score_events", sa.Column("at_us", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE score_events SET region ="
        " (SELECT users.region FROM users WHERE users.user_id = score_events.user_id)"
    )
    op.execute("UPDATE score_events SET at_us = reached_at_us WHERE points <> 0 OR version = 1")
    op.create_table(
        "board_scores",
        sa.Column("board_id", sa.String(48), nullable=False),
        sa.Column("period_id", sa.String(16), nullable=False),
        sa.Column("region", sa.String(64), server_default="", nullable=False),
        sa.Column("user_id", _user_id(), nullable=False),
        sa.Column("score", sa.BigInteger(), nullable=False),
        sa.Column("reached_at_us", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.user_id"], name="fk_board_scores_user_id_users"
        ),
        sa.PrimaryKeyConstraint(
            "board_id", "period_id", "region", "user_id", name="pk_board_scores"
        ),
    )
    op.create_index(
        "ix_board_scores_rank",
        "board_scores",
        [
            "board_id",
            "period_id",
            "region",
            sa.text("score DESC"),
            "reached_at_us",
            "user_id",
        ],
    )
    op.create_index("ix_board_scores_user_id", "board_scores", ["user_id"])
    op.create_table(
        "board_defs",
        sa.Column("board_id", sa.String(48), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("board_id", name="pk_board_defs"),
    )


def downgrade() -> None:
    op.drop_table("board_defs")
    op.drop_index("ix_board_scores_user_id", table_name="board_scores")
    op.drop_index("ix_board_scores_rank", table_name="board_scores")
    op.drop_table("board_scores")
    op.drop_column("score_events", "at_us")
    op.drop_column("score_events", "region")
