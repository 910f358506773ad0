"""The store's error boundary: every public call is bounded in time, and database failures come
out as `ServiceUnavailable`, never as driver or SQLAlchemy exception types.

Connection-level failures (refused, reset, timed out, a server that stops answering) are the
expected ones and are logged briefly. Any other database error (a deadlock, a missing table
because migrations were not run, a bug) is logged with its stack and also reported as
`ServiceUnavailable`: the caller can only retry later, and no database detail leaks out.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import sqlalchemy.exc as sa_exc

from scoreboard.deadline import bounded
from scoreboard.domain.errors import ServiceUnavailable

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


def _driver_connection_errors() -> tuple[type[BaseException], ...]:
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return ()
    return (asyncpg.PostgresConnectionError, asyncpg.InterfaceError)


CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    sa_exc.TimeoutError,
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    *_driver_connection_errors(),
)


def is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, CONNECTION_ERRORS)


def unavailable(exc: BaseException) -> ServiceUnavailable:
    """The domain error for a database failure (the caller raises it `from exc`)."""
    if is_connection_error(exc):
        log.warning("database unavailable: %s: %s", type(exc).__name__, exc)
        return ServiceUnavailable("The database cannot be reached; retry later.")
    log.error("database error", exc_info=exc)
    return ServiceUnavailable("The database could not complete the request; retry later.")


def is_database_error(exc: BaseException) -> bool:
    return isinstance(exc, sa_exc.SQLAlchemyError) or is_connection_error(exc)


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("abandoned database work ended with %r", task.exception())


class Guard:
    """Bounds store calls in time and maps their database failures.

    The bound is `seconds`, or what is left of the current request's budget when that is less
    (`scoreboard.deadline`): a request's calls together answer within `seconds`; a spent
    budget refuses at once without starting the work.

    The work runs in its own task. When it has not finished after its bound, the caller gets
    `ServiceUnavailable` at once and the task is cancelled and left to unwind in the
    background: unwinding (rollback, closing a connection) may itself wait on a server that
    no longer answers, and must not hold up the caller. Abandoned tasks are kept referenced
    here until they end (`drain` waits for them).
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._abandoned: set[asyncio.Task[Any]] = set()
        # Told of every `ServiceUnavailable` raised here, with the store call's name
        # ("record_events"): set by the app's wiring (metrics), None in tools and tests.
        self.on_error: Callable[[str], None] | None = None

    def _failed(self, name: str, exc: BaseException) -> ServiceUnavailable:
        if self.on_error is not None:
            self.on_error(name.rpartition(".")[2])
        return unavailable(exc)

    async def run(self, work: Coroutine[Any, Any, R]) -> R:
        """Await `work` for at most `seconds` (less if the request's budget has less left);
        database failures → `ServiceUnavailable`."""
        name = getattr(work, "__qualname__", "store call")
        seconds = bounded(self.seconds)
        if seconds <= 0:
            work.close()  # never started: nothing to unwind
            raise unavailable(TimeoutError(f"{name}: the request's {self.seconds} s are spent"))
        task = asyncio.ensure_future(work)
        try:
            done, _ = await asyncio.wait({task}, timeout=seconds)
        except asyncio.CancelledError:
            self.abandon(task)
            raise
        if not done:
            self.abandon(task)
            raise self._failed(name, TimeoutError(f"{name}: no answer within {self.seconds} s"))
        try:
            return task.result()
        except Exception as exc:
            if is_database_error(exc):
                raise self._failed(name, exc) from exc
            raise

    def abandon(self, task: asyncio.Task[Any]) -> None:
        if task.done():
            _retrieve(task)
            return
        task.cancel()
        self._abandoned.add(task)
        task.add_done_callback(self._abandoned.discard)
        task.add_done_callback(_retrieve)

    async def drain(self) -> None:
        """Wait (at most `seconds`) for abandoned work to unwind."""
        if self._abandoned:
            await asyncio.wait(set(self._abandoned), timeout=self.seconds)


class Guarded(Protocol):
    @property
    def guard(self) -> Guard: ...


S = TypeVar("S", bound=Guarded)


def unit_of_work(
    method: Callable[Concatenate[S, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
    """Decorate a store method: bounded by `self.guard` (see `Guard.run`)."""

    async def wrapper(store: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await store.guard.run(method(store, *args, **kwargs))

    functools.update_wrapper(wrapper, method)
    return wrapper
