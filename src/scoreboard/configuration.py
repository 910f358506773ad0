"""Reading the configuration: the environment into `Settings`, and its problems as one line
each that names the environment variable (never a traceback, never a secret's value).

- `load_settings()` raises `ConfigError` whose lines read
  `SCOREBOARD_TOKEN_TTL_SECONDS='abc': Input should be a valid integer`.
- `unknown_variables()` lists `SCOREBOARD_*` variables no setting reads (a typo in
  `SCOREBOARD_DATABSE_URL` would otherwise fall back to SQLite without a word), with the
  closest setting's name when there is one.
- `database_problem()` reaches the database once and says, in one line, what is wrong
  (a PostgreSQL database that does not exist yet comes with the command that creates it).
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping

from pydantic import ValidationError
from pydantic_settings import SettingsError
from sqlalchemy.engine import make_url

from scoreboard.config import Settings

PREFIX = "SCOREBOARD_"
# Read by the test suite, not by the service.
TEST_VARIABLES = frozenset({"SCOREBOARD_UPDATE_SCREENSHOT", "SCOREBOARD_PHONE_SHOT"})
TEST_PREFIX = "SCOREBOARD_TEST_"
RETIRED = {
    "SCOREBOARD_WS_QUEUE_SIZE": "replaced by SCOREBOARD_WS_SEND_TIMEOUT_SECONDS (there is no "
    "queue any more)",
}
# Their values are never echoed in an error.
SECRET_FIELDS = frozenset(
    {"jwt_secret", "database_url", "redis_url", "webhook_url", "webhook_secret"}
)


class ConfigError(Exception):
    """The configuration cannot be used; `lines` says why, one problem per line."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def variable(field: str) -> str:
    return PREFIX + field.upper()


def load_settings() -> Settings:
    """`Settings()` from the environment (and `.env`), or `ConfigError`."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError([_validation_line(error) for error in exc.errors()]) from None
    except SettingsError as exc:  # a value that must be JSON (a list) and is not
        found = re.search(r'field "(\w+)"', str(exc))
        name = variable(found.group(1)) if found else "a SCOREBOARD_* variable"
        raise ConfigError([f'{name}: not valid JSON (a list is written ["a", "b"])']) from None
    except ValueError as exc:  # a validator's own message (rate limit notation, ...)
        raise ConfigError([str(exc).splitlines()[0]]) from None


def _validation_line(error: Mapping[str, object]) -> str:
    loc = error.get("loc") or ()
    field = str(loc[0]) if isinstance(loc, tuple) and loc else ""
    message = str(error.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    if not field:
        return message
    if field in SECRET_FIELDS:
        return f"{variable(field)}: {message}"
    value = error.get("input")
    shown = f"={value!r}" if isinstance(value, str | int | float) else ""
    return f"{variable(field)}{shown}: {message}"


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """A warning line per `SCOREBOARD_*` variable that no setting reads."""
    environ = os.environ if environ is None else environ
    known = {variable(field) for field in Settings.model_fields}
    lines = []
    for name in sorted(environ):
        if not name.startswith(PREFIX) or name in known:
            continue
        if name in TEST_VARIABLES or name.startswith(TEST_PREFIX):
            continue
        if name in RETIRED:
            lines.append(f"{name} is no longer read: {RETIRED[name]}")
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
        hint = f"; did you mean {close[0]}?" if close else ""
        lines.append(f"{name} is not a scoreboard setting and is ignored{hint}")
    return lines


async def database_problem(url: str, seconds: float) -> str | None:
    """None when the database answers; else one line saying what is wrong."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return None  # SQLite: the file (and its directory) is created on first use
    import asyncpg

    host, port = parsed.host or "127.0.0.1", parsed.port or 5432
    user, name = parsed.username or "postgres", parsed.database or ""
    try:
        conn = await asyncpg.connect(
            host=host,
            port=port,
            user=user,
            password=parsed.password,
            database=name,
            timeout=seconds,
        )
    except asyncpg.InvalidCatalogNameError:
        return (
            f"PostgreSQL database {name!r} does not exist on {host}:{port}; create it with: "
            f"createdb -h {host} -p {port} -U {user} {name}"
        )
    except asyncpg.InvalidPasswordError:
        return f"PostgreSQL at {host}:{port} refused user {user!r}: wrong password"
    except (OSError, TimeoutError) as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
        return f"PostgreSQL at {host}:{port} cannot be reached: {reason}"
    except asyncpg.PostgresError as exc:
        return f"PostgreSQL at {host}:{port}: {exc}"
    await conn.close()
    return None
