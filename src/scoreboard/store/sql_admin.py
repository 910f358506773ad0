"""`SqlStore`'s API keys, users' roles and admin audit log (API.md section 6).

A mixin like `store.sql_friends.Friends`. `append_audit(conn, entry, now)` is also a plain
function of a connection, so that a store transaction that changes something on an admin's
behalf (a ban, a void, a role) appends its audit entry in the same transaction: the log never
lacks an action that happened, nor holds one that did not.

`admin_audit` is append-only in the database too (triggers, migration 0005): nothing here
updates or deletes its rows.
"""

from __future__ import annotations

import contextlib
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scoreboard.domain.errors import NameTaken
from scoreboard.domain.times import utcnow
from scoreboard.store.base import ApiKeyRecord, ApiKeyRole, AuditEntry, AuditRecord, UserRecord
from scoreboard.store.engine import Engines, insert
from scoreboard.store.guard import Guard, unit_of_work
from scoreboard.store.records import (
    api_key_from_row,
    audit_from_row,
    format_roles,
    parse_roles,
    user_from_row,
)
from scoreboard.store.schema import admin_audit, api_keys, users


async def append_audit(conn: AsyncConnection, entry: AuditEntry, now: datetime) -> AuditRecord:
    """Append `entry` inside the caller's transaction; the record with its id."""
    stmt = (
        sa.insert(admin_audit)
        .values(
            actor=entry.actor,
            action=entry.action,
            target=entry.target,
            reason=entry.reason,
            created_at=now,
        )
        .returning(*admin_audit.c)
    )
    return audit_from_row((await conn.execute(stmt)).one())


class Admin:
    """The API key, role and audit methods; `SqlStore` sets the attributes below."""

    _engines: Engines
    _guard: Guard

    @property
    def guard(self) -> Guard:
        return self._guard

    def _admin_write(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        return self._engines.write.begin()

    @unit_of_work
    async def create_api_key(self, name: str, role: ApiKeyRole, key_hash: str) -> ApiKeyRecord:
        """Insert the key; `NameTaken` when the name is in use (revoked keys included)."""
        stmt = (
            insert(self._engines.dialect, api_keys)
            .values(name=name, role=role, key_hash=key_hash, created_at=utcnow())
            .on_conflict_do_nothing()
            .returning(*api_keys.c)
        )
        async with self._admin_write() as conn:
            row = (await conn.execute(stmt)).first()
        if row is None:  # the name (a hash collision of 256 random bits does not happen)
            raise NameTaken(f"An API key named {name!r} exists (revoked keys keep their name).")
        return api_key_from_row(row)

    @unit_of_work
    async def revoke_api_key(self, name: str) -> ApiKeyRecord | None:
        async with self._admin_write() as conn:
            await conn.execute(
                sa.update(api_keys)
                .where(api_keys.c.name == name, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            row = (await conn.execute(sa.select(api_keys).where(api_keys.c.name == name))).first()
        return None if row is None else api_key_from_row(row)

    @unit_of_work
    async def api_keys(self) -> list[ApiKeyRecord]:
        async with self._engines.read.begin() as conn:
            rows = await conn.execute(sa.select(api_keys).order_by(api_keys.c.name))
            return [api_key_from_row(row) for row in rows]

    @unit_of_work
    async def api_key_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        async with self._engines.read.begin() as conn:
            found = sa.select(api_keys).where(api_keys.c.key_hash == key_hash)
            row = (await conn.execute(found)).first()
        return None if row is None else api_key_from_row(row)

    @unit_of_work
    async def touch_api_key(self, name: str) -> None:
        async with self._admin_write() as conn:
            await conn.execute(
                sa.update(api_keys).where(api_keys.c.name == name).values(last_used_at=utcnow())
            )

    @unit_of_work
    async def set_role(
        self, user_id: str, role: str, granted: bool, audit: AuditEntry
    ) -> UserRecord | None:
        """Read-modify-write of the user's roles under the row's lock (PostgreSQL; SQLite's
        write transaction holds the database), and the audit entry, in one transaction."""
        active = sa.and_(users.c.user_id == user_id, users.c.deleted_at.is_(None))
        async with self._admin_write() as conn:
            lock = sa.select(users.c.user_id, users.c.roles).where(active)
            if self._engines.dialect == "postgresql":
                lock = lock.with_for_update(key_share=True)
            found = (await conn.execute(lock)).first()
            if found is None:
                return None
            roles = parse_roles(found.roles)
            roles = roles | {role} if granted else roles - {role}
            row = (
                await conn.execute(
                    sa.update(users)
                    .where(users.c.user_id == found.user_id)
                    .values(roles=format_roles(roles))
                    .returning(*users.c)
                )
            ).one()
            await append_audit(conn, audit, utcnow())
        return user_from_row(row)

    @unit_of_work
    async def append_audit(self, entry: AuditEntry) -> AuditRecord:
        async with self._admin_write() as conn:
            return await append_audit(conn, entry, utcnow())

    @unit_of_work
    async def audit_page(self, limit: int, before: int | None = None) -> list[AuditRecord]:
        stmt = sa.select(admin_audit).order_by(admin_audit.c.audit_id.desc()).limit(limit)
        if before is not None:
            stmt = stmt.where(admin_audit.c.audit_id < before)
        async with self._engines.read.begin() as conn:
            return [audit_from_row(row) for row in await conn.execute(stmt)]
