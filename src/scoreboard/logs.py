"""Logging: one configuration for the service's and uvicorn's loggers, readable text by default
or one JSON object per line (`SCOREBOARD_LOG_FORMAT=json`), with the request id of the request
a line belongs to, and warnings about a backend that repeat only so often.

- The request id lives in a context variable (`REQUEST_ID`), set by the request layer from a
  valid `X-Request-Id` header or made up; every line logged while the request runs (uvicorn's
  access line included: it is written from inside the request's `send`) carries it.
- `RepeatedWarning` turns "Redis is down" on every request or every second into one line
  naming the host, then one line per interval saying how many were held back.
- Alembic's per-start INFO lines (`alembic.runtime.*`) are kept at WARNING.
"""

from __future__ import annotations

import itertools
import logging
import logging.config
import re
import secrets
import time
from contextvars import ContextVar
from typing import Any

import orjson

REQUEST_ID: ContextVar[str | None] = ContextVar("scoreboard_request_id", default=None)
REQUEST_ID_HEADER = "x-request-id"
VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")
FORMATS = ("text", "json")
QUIET = {"alembic": logging.WARNING}  # INFO lines on every start that tell an operator nothing
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(request_suffix)s: %(message)s"


class RequestIds:
    """Fresh request ids: 16 hex digits, a random per-process half and a counter, unique within
    the process and across processes (`secrets` per request costs a system call: 5% of a
    score event's CPU, measured)."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(4)
        self._count = itertools.count(1)

    def new(self) -> str:
        return f"{self._prefix}{next(self._count) & 0xFFFFFFFF:08x}"


def request_id_from(header: str | None, ids: RequestIds) -> str:
    """The client's id when it is a sane token (kept, so logs can be joined across services);
    otherwise a fresh one."""
    if header and VALID_REQUEST_ID.fullmatch(header):
        return header
    return ids.new()


class RequestContext(logging.Filter):
    """Adds `request_id` (and the text format's ` [req=…]` suffix) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = REQUEST_ID.get()
        record.request_id = request_id
        record.request_suffix = f" [req={request_id}]" if request_id else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, and the exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


JsonFormatter.converter = time.gmtime


def logging_config(level: str = "info", fmt: str = "text") -> dict[str, Any]:
    """A `logging.config.dictConfig` for the root, `scoreboard.*` and uvicorn's loggers (also
    given to uvicorn as its `log_config`, so it does not install its own formatters)."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}")
    formatter: dict[str, Any] = (
        {"()": JsonFormatter}
        if fmt == "json"
        else {"format": TEXT_FORMAT, "datefmt": "%Y-%m-%d %H:%M:%S"}
    )
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "main",
        "filters": ["request"],
        "stream": "ext://sys.stderr",
    }
    upper = level.upper()
    uvicorn_loggers = ("uvicorn", "uvicorn.error", "uvicorn.access")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request": {"()": RequestContext}},
        "formatters": {"main": formatter},
        "handlers": {"main": handler},
        "root": {"level": upper, "handlers": ["main"]},
        "loggers": {
            **{
                name: {"level": upper, "handlers": [], "propagate": True}
                for name in uvicorn_loggers
            },
            **{name: {"level": logging.getLevelName(lvl)} for name, lvl in QUIET.items()},
        },
    }


def configure(level: str = "info", fmt: str = "text") -> dict[str, Any]:
    """Apply `logging_config` now; returns it (for uvicorn's `log_config`)."""
    config = logging_config(level, fmt)
    logging.config.dictConfig(config)
    return config


class RepeatedWarning:
    """A warning that may fire on every request while a backend is down: logged the first
    time, then at most once per `every` seconds with the number held back since."""

    def __init__(self, logger: logging.Logger, every: float = 30.0) -> None:
        self._log = logger
        self._every = every
        self._next: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warn(self, key: str, message: str, *args: object) -> bool:
        """Log `message % args` unless `key` was logged less than `every` s ago. True if
        logged."""
        now = time.monotonic()
        if now < self._next.get(key, 0.0):
            self._held[key] = self._held.get(key, 0) + 1
            return False
        held = self._held.pop(key, 0)
        suffix = f" ({held} more like this in the last {self._every:g} s)" if held else ""
        self._log.warning(message + suffix, *args)
        self._next[key] = now + self._every
        return True

    def clear(self, key: str) -> None:
        """The condition is over: the next occurrence is logged at once."""
        self._next.pop(key, None)
        self._held.pop(key, None)
