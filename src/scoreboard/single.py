"""One process per embedded database: the embedded mode's rank index, live updates and rate
limits live in the serving process's memory, so a second `scoreboard serve` on the same SQLite
file would keep its own copies and the two would drift apart. The second one must refuse.

The guard is an OS lock (`fcntl.flock`) on a file beside the database, held for the life of the
serving process: the kernel releases it when the process exits, however it exits (a SIGKILL
or a crash included), so a stale lock file never blocks a restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import make_url

from scoreboard.config import Settings
from scoreboard.store.engine import sqlite_file

log = logging.getLogger(__name__)

SUFFIX = ".serve-lock"


class AlreadyServing(RuntimeError):
    """Another process serves this embedded database."""


def embedded_lock_path(settings: Settings) -> Path | None:
    """The lock file of an embedded deployment (SQLite + in-process realtime); None otherwise:
    on PostgreSQL + Redis any number of processes share the state by design."""
    if settings.redis_url:
        return None
    database = sqlite_file(make_url(settings.resolved_database_url()))
    if database is None:
        return None
    database = database.expanduser().resolve()
    return database.with_name(database.name + SUFFIX)


class EmbeddedLock:
    """An exclusive, non-blocking `flock` on `path`, from `acquire` until `release`.

    Locks are per open file: a second `EmbeddedLock` on the same path refuses even inside the
    same process, so two apps sharing one database in one test process are refused too.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise `AlreadyServing` with what to do instead."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise AlreadyServing(refusal(self.path, holder)) from None
        except BaseException:
            os.close(fd)
            raise
        # The holder's pid, for the refusal message of the next one (informative only: the
        # lock, not the file's content, decides).
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the file releases the lock


def refusal(path: Path, holder: str) -> str:
    database = path.with_name(path.name.removesuffix(SUFFIX))
    who = f"process {holder}" if holder.isdigit() else "another process"
    return (
        f"Another `scoreboard serve` ({who}) is already serving the embedded database "
        f"{database}. The embedded mode (SQLite with the in-process rank index, live updates "
        "and rate limits) runs as ONE process: a second one would keep its own index and its "
        "live clients would see a different board. Stop the other process, or run several "
        "processes on PostgreSQL + Redis (SCOREBOARD_DATABASE_URL=postgresql://..., "
        "SCOREBOARD_REDIS_URL=redis://...; see docs/SCALING.md)."
    )


def check_alone(settings: Settings) -> None:
    """Raise `AlreadyServing` when another process holds the embedded lock now: `serve` asks
    before the server starts, so the refusal is one message, not a framework traceback. The
    lifespan still takes the lock (`serving_alone`): that, not this check, is the guard."""
    path = embedded_lock_path(settings)
    if path is not None:
        lock = EmbeddedLock(path)
        lock.acquire()
        lock.release()


@contextlib.contextmanager
def serving_alone(settings: Settings) -> Iterator[None]:
    """Hold the embedded lock for the block (nothing to hold in scaled mode)."""
    path = embedded_lock_path(settings)
    if path is None:
        yield
        return
    lock = EmbeddedLock(path)
    try:
        lock.acquire()
    except AlreadyServing as exc:
        log.error("%s", exc)  # the plain reason first, before the framework's traceback
        raise
    try:
        yield
    finally:
        lock.release()
