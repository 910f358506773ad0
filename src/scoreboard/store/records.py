"""Row conversions: SQLAlchemy rows of the schema into the `Store` protocol's records."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Row

from scoreboard.domain.ranking import Standing
from scoreboard.store.base import (
    ActionRecord,
    ActionStatus,
    ApiKeyRecord,
    ApiKeyRole,
    AuditRecord,
    EventRecord,
    UserRecord,
)


def user_from_row(row: Row[Any]) -> UserRecord:
    return UserRecord(
        user_id=row.user_id,
        username=row.username,
        display_name=row.display_name,
        password_hash=row.password_hash,
        created_at=row.created_at,
        deleted_at=row.deleted_at,
        avatar_url=row.avatar_url,
        region=row.region,
        external_subject=row.external_subject,
        status=row.status,
        roles=parse_roles(row.roles),
    )


def parse_roles(text: str | None) -> frozenset[str]:
    """`users.roles`: comma-separated, "" for none."""
    return frozenset(part for part in (text or "").split(",") if part)


def format_roles(roles: frozenset[str]) -> str:
    return ",".join(sorted(roles))


def action_from_row(row: Row[Any]) -> ActionRecord:
    return ActionRecord(
        action_id=row.action_id,
        user_id=row.user_id,
        action_type=row.action_type,
        status=cast(ActionStatus, row.status),
        started_at=row.started_at,
        ended_at=row.ended_at,
        points=row.points,
        metadata=dict(row._mapping["metadata"] or {}),
        suspicious=bool(row.suspicious),
    )


def standing_from_row(row: Row[*tuple[Any, ...]]) -> Standing:
    return Standing(row.user_id, row.display_name, int(row.score), int(row.reached_at_us))


def event_from_row(row: Row[Any]) -> EventRecord:
    """From a `score_events` row joined with the user's `display_name`."""
    return EventRecord(
        event_id=int(row.id),
        user_id=row.user_id,
        display_name=row.display_name,
        action_type=row.action_type,
        points=int(row.points),
        new_score=int(row.new_score),
        reached_at_us=int(row.reached_at_us),
        version=int(row.version),
        created_at=row.created_at,
        region=row.region,
    )


def api_key_from_row(row: Row[Any]) -> ApiKeyRecord:
    return ApiKeyRecord(
        name=row.name,
        role=cast(ApiKeyRole, row.role),
        key_hash=row.key_hash,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def audit_from_row(row: Row[Any]) -> AuditRecord:
    return AuditRecord(
        audit_id=int(row.audit_id),
        actor=row.actor,
        action=row.action,
        target=row.target,
        reason=row.reason,
        created_at=row.created_at,
    )
