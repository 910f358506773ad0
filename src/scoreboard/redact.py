"""No secret in a log line or a printed message: tokens in request targets, passwords in URLs.

The live page sends its token in the `bearer` WebSocket subprotocol, which no log records;
`?token=` is still accepted from older clients, so the server's own log lines (uvicorn's
access log, and its WebSocket lines on `uvicorn.error`) are filtered: the value of a `token`,
`access_token` or `refresh_token` parameter becomes `***`.
"""

from __future__ import annotations

import logging
import re

from sqlalchemy.engine import make_url

TOKEN_PARAM = re.compile(r"(?i)([?&](?:access_|refresh_)?token=)[^&#\s\"']*")
SERVER_LOGGERS = ("uvicorn.access", "uvicorn.error")


def redact_target(text: str) -> str:
    """`/ws/leaderboard?limit=10&token=eyJ…` → `/ws/leaderboard?limit=10&token=***`."""
    return TOKEN_PARAM.sub(r"\1***", text)


def redact_url(url: str) -> str:
    """A database or Redis URL fit to print: its password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy parses: hide what stands between ':' and '@'
        return re.sub(r"//([^:/@]*):[^@]*@", r"//\1:***@", url)


class RedactTokens(logging.Filter):
    """Rewrites a record's message and string arguments with `redact_target`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "token=" in record.msg.lower():
            record.msg = redact_target(record.msg)
        args = record.args
        if isinstance(args, tuple) and any(
            isinstance(arg, str) and "token=" in arg.lower() for arg in args
        ):
            record.args = tuple(redact_target(a) if isinstance(a, str) else a for a in args)
        return True


def install_log_redaction() -> None:
    """Filter the server's loggers (idempotent)."""
    for name in SERVER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
