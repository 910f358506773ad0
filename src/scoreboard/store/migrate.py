"""Run the schema migrations (Alembic) from code; no alembic.ini needed.

`run_migrations(url)` upgrades the database to the newest revision. It is safe to call on every
start, from several processes at once (see `migrations/env.py` for how concurrent migrators are
serialized) and from inside a running event loop: Alembic runs in a worker thread, where
`env.py` drives its async engine with its own loop.

Within one process, runs are serialized by a lock: Alembic keeps the running environment in
module-level proxies (`alembic.context`, `alembic.op`), so two upgrades in two threads at once
would trample each other. Across processes, the database serializes them (see env.py).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config

from scoreboard.store.engine import async_url, ensure_sqlite_dir

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Key of the PostgreSQL advisory lock held by a migrator (any fixed 64-bit number; this one
# spells "sb-migr" in ASCII).
MIGRATION_LOCK_ID = 0x73622D6D696772

# A SQLite migrator waits this long for another one to finish.
SQLITE_MIGRATION_BUSY_MS = 60_000

# Process-wide because Alembic's own state is (see the module docstring).
_ALEMBIC_LOCK = threading.Lock()


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Passed as an attribute, not a main option: the ini parser would mangle '%' in passwords.
    config.attributes["url"] = async_url(url).render_as_string(hide_password=False)
    return config


async def run_migrations(url: str) -> None:
    """Upgrade the database at `url` to head; a no-op when it is already there.

    For SQLite the parent directory of the database file is created if missing.
    """
    ensure_sqlite_dir(async_url(url))
    await asyncio.to_thread(_upgrade, alembic_config(url))


def _upgrade(config: Config) -> None:
    with _ALEMBIC_LOCK:
        command.upgrade(config, "head")


async def current_revision(url: str) -> str | None:
    """The revision the database is at (None before the first migration)."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    engine = create_async_engine(async_url(url), poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    finally:
        await engine.dispose()
