"""`scoreboard check`: the configuration as the service will read it, and each backend reached
once, printed as one line per finding. Nothing is written (no migration, no key)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from scoreboard.config import Settings
from scoreboard.configuration import database_problem
from scoreboard.redact import redact_url


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    ok: bool = True

    def good(self, line: str) -> None:
        self.lines.append(f"ok    {line}")

    def bad(self, line: str) -> None:
        self.lines.append(f"FAIL  {line}")
        self.ok = False

    def warn(self, line: str) -> None:
        self.lines.append(f"warn  {line}")


async def run_check(settings: Settings, warnings: list[str]) -> Report:
    report = Report()
    for line in warnings:
        report.warn(line)
    _catalogue(settings, report)
    await _database(settings, report)
    if settings.redis_url:
        await _redis(settings, report)
    else:
        report.good("mode: embedded (one process; in-process rank index, pub/sub and limits)")
    return report


def _catalogue(settings: Settings, report: Report) -> None:
    from scoreboard.domain.catalogue import Catalogue

    try:
        if settings.actions_file:
            catalogue = Catalogue.from_file(settings.actions_file)
            source = str(settings.actions_file)
        else:
            catalogue = Catalogue.default()
            source = "built-in"
    except (OSError, ValueError) as exc:
        report.bad(f"SCOREBOARD_ACTIONS_FILE: {str(exc).splitlines()[0]}")
        return
    report.good(f"action catalogue: {len(catalogue.rules())} actions ({source})")
    boards = settings.board_catalogue()  # checked when the settings were read
    names = ", ".join(b.board_id for b in boards)
    source = str(settings.boards_file) if settings.boards_file else "built-in"
    report.good(f"boards: {names} ({source})")
    if boards.total is None or "global" not in boards:
        report.warn("boards: no `global` all-time board: the routes of API.md sections 2-4 read it")
    rules = settings.rules()  # checked when the settings were read
    shown = ", ".join(f"{name} {json.dumps(value)}" for name, value in rules.as_dict().items())
    report.good(f"rules: {shown} ({settings.rules_file or 'built-in'})")


async def _database(settings: Settings, report: Report) -> None:
    from scoreboard.backends import normalize_database_url
    from scoreboard.store.migrate import alembic_config, current_revision

    try:
        url = normalize_database_url(settings.resolved_database_url())
    except ValueError as exc:
        report.bad(f"SCOREBOARD_DATABASE_URL: {exc}")
        return
    shown = redact_url(url)
    from scoreboard.store.engine import async_url, sqlite_file

    path = sqlite_file(async_url(url))
    if path is not None and not path.exists():
        report.good(f"database {path}: not there yet; `scoreboard serve` creates it")
        return
    problem = await database_problem(url, settings.db_timeout_seconds)
    if problem is not None:
        report.bad(problem)
        return
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    try:
        revision = await current_revision(url)
    except Exception as exc:  # a database that answered a moment ago and now does not
        report.bad(f"database {shown}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
        return
    if revision == head:
        report.good(f"database {shown}: schema up to date (revision {head})")
    elif revision is None:
        report.warn(f"database {shown}: empty; `scoreboard serve` (or `migrate`) creates it")
    else:
        report.warn(f"database {shown}: schema at {revision}, newest {head}: run migrate")


async def _redis(settings: Settings, report: Report) -> None:
    from scoreboard.backends import redis_client

    shown = redact_url(settings.redis_url)
    client = redis_client(settings.redis_url, settings.redis_timeout_seconds, max_connections=1)
    try:
        started = time.perf_counter()
        await client.ping()
        elapsed = (time.perf_counter() - started) * 1000
        info = await client.info("server")
        version = info.get("redis_version", "?")
        mode = info.get("redis_mode", "standalone")
        report.good(f"redis {shown}: Redis {version} ({mode}), PING {elapsed:.1f} ms")
        report.good(f"mode: scaled (key prefix {settings.redis_prefix!r})")
    except Exception as exc:
        report.bad(f"redis {shown}: cannot be reached: {type(exc).__name__}: {exc}")
    finally:
        await client.aclose()
