"""The event-log query: `ix_score_events_user_id` becomes (user_id, id), so a user's events
page newest first by a range scan of the index (PostgreSQL sorted all of a user's events for
every page with the index on user_id alone; SQLite's index already ended with the rowid).
It replaces the old index, which it serves in full: no extra cost on each write.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-10

Self-contained on purpose (no import of store/schema.py), like 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_score_events_user_id", "score_events")
    op.create_index("ix_score_events_user_id", "score_events", ["user_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_score_events_user_id", "score_events")
    op.create_index("ix_score_events_user_id", "score_events", ["user_id"])
