"""Moderation: each user's status (active, banned, quarantined), and the event a compensating
event voids (unique: an event is voided at most once).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04

Self-contained on purpose (no import of store/schema.py), like 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN with a default, also on SQLite (no table copy: other tables'
    # foreign keys point at users).
    op.add_column(
        "users", sa.Column("status", sa.String(16), nullable=False, server_default="active")
    )
    op.add_column("score_events", sa.Column("voids", sa.BigInteger(), nullable=True))
    op.create_index("ux_score_events_voids", "score_events", ["voids"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_score_events_voids", "score_events")
    op.drop_column("score_events", "voids")
    op.drop_column("users", "status")
