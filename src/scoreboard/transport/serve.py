"""Run the app under uvicorn with the guarded protocols (what `scoreboard serve` does)."""

from __future__ import annotations

import contextlib
import logging
import resource
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from multiprocessing.connection import Connection
from types import FrameType

import uvicorn
from starlette.types import ASGIApp
from uvicorn.config import STARTUP_FAILURE

from scoreboard import logs
from scoreboard.config import Settings
from scoreboard.drain import Drain
from scoreboard.metrics import Metrics
from scoreboard.transport.guard import ConnectionGuard, TransportLimits
from scoreboard.transport.http import GuardedHttpProtocol
from scoreboard.transport.websocket import GuardedWebSocketProtocol

log = logging.getLogger(__name__)


# What a worker builds in its own process (`serve --workers`): the app, its settings and its
# metrics. A module-level function, so that it can be named to a spawned process.
AppBuilder = Callable[[], tuple[ASGIApp, Settings, Metrics]]

# Where the hard limit is "unlimited", the soft limit is raised this far (Linux refuses
# RLIM_INFINITY above fs.nr_open, 1,048,576 by default).
_UNLIMITED_FILES = 1 << 20


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    proxy_headers: bool = False
    forwarded_allow_ips: str = "127.0.0.1"
    workers: int = 1
    log_format: str = "text"  # SCOREBOARD_LOG_FORMAT (scoreboard.logs)


def protocol_classes(
    guard: ConnectionGuard,
) -> tuple[type[GuardedHttpProtocol], type[GuardedWebSocketProtocol]]:
    """The protocol classes of one server, bound to its guard. uvicorn instantiates the class
    it is given with fixed arguments, so the guard travels as a class attribute of a subclass
    made here (one per server, no module-level state)."""

    class WebSocketProtocol(GuardedWebSocketProtocol):
        pass

    class HttpProtocol(GuardedHttpProtocol):
        pass

    WebSocketProtocol.guard = guard
    HttpProtocol.guard = guard
    HttpProtocol.websocket_class = WebSocketProtocol
    return HttpProtocol, WebSocketProtocol


def build_config(
    app: ASGIApp, settings: Settings, metrics: Metrics, options: ServeOptions
) -> uvicorn.Config:
    guard = ConnectionGuard(TransportLimits.from_settings(settings), metrics)
    http, ws = protocol_classes(guard)
    return uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        log_level=options.log_level,
        log_config=logs.logging_config(options.log_level, options.log_format),
        http=http,
        ws=ws,
        ws_max_size=settings.ws_max_message_bytes,
        ws_per_message_deflate=False,
        proxy_headers=options.proxy_headers,
        forwarded_allow_ips=options.forwarded_allow_ips,
        timeout_graceful_shutdown=5,
    )


def raise_open_files_limit() -> int:
    """Raise the soft limit on open files to the hard limit (each connection is a file; the
    common soft default of 1024 is reached long before memory or CPU). Returns the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _UNLIMITED_FILES if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-files limit from %d to %d: %s", soft, target, exc)
    return soft


def run(app: ASGIApp, settings: Settings, metrics: Metrics, options: ServeOptions) -> None:
    """Serve until a signal stops the server; exit status 3 (uvicorn's) if it never started."""
    files = raise_open_files_limit()
    log.info("open-files limit: %d", files)
    server = _Server(build_config(app, settings, metrics, options), None, _drain(app, settings))
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def _drain(app: ASGIApp, settings: Settings) -> tuple[Drain, float] | None:
    drain = Drain.of(app)
    if drain is None or settings.drain_seconds <= 0:
        return None
    return drain, settings.drain_seconds


class _Server(uvicorn.Server):
    """uvicorn's server, calling `on_started` once it accepts connections, and draining on a
    first SIGTERM (`scoreboard.drain`): serving on while `/readyz` says 503, then stopping."""

    def __init__(
        self,
        config: uvicorn.Config,
        on_started: Callable[[], None] | None,
        drain: tuple[Drain, float] | None = None,
    ) -> None:
        super().__init__(config)
        self._on_started = on_started
        self._drain = drain
        self._drain_told = False

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self._on_started is not None:
            self._on_started()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        drain = self._drain
        if sig == signal.SIGTERM and drain is not None and not drain[0].draining:
            self._captured_signals.append(sig)  # the process still ends as SIGTERM ends it
            drain[0].start(drain[1])  # logged on the next tick, not in the signal handler
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self._drain is not None and self._drain[0].draining:
            if not self._drain_told:
                self._drain_told = True
                log.info("SIGTERM: draining, /readyz answers 503 for %.1f s", self._drain[1])
            if self._drain[0].over():
                self.should_exit = True
        return await super().on_tick(counter)


def run_workers(
    build: AppBuilder, options: ServeOptions, on_serving: Callable[[list[int]], None]
) -> int:
    """`serve --workers N`: claim the port, supervise N workers; the exit status.
    `on_serving(pids)` is called once, when every worker has started."""
    from scoreboard.transport.workers import Supervisor, port_socket

    files = raise_open_files_limit()  # inherited by every worker
    log.info("open-files limit: %d", files)
    try:
        claim = port_socket(options.host, options.port)
    except OSError as exc:
        log.error("cannot bind %s:%d: %s", options.host, options.port, exc)
        return STARTUP_FAILURE
    log.info("serving http://%s:%d with %d workers", options.host, options.port, options.workers)
    with claim:
        target = partial(serve_worker, build, options)
        return Supervisor(options.workers, target, on_serving).run()


def serve_worker(build: AppBuilder, options: ServeOptions, ready: Connection) -> None:
    """One worker of `serve --workers`, in its own process: build the app and serve it on its
    own SO_REUSEPORT listener until SIGTERM; tells the parent through `ready` once serving."""
    from scoreboard.transport.workers import detach_from_parent, port_socket

    detach_from_parent()
    logs.configure(options.log_level, options.log_format)
    app, settings, metrics = build()
    sock = port_socket(options.host, options.port)

    def started() -> None:
        with contextlib.suppress(OSError):
            ready.send_bytes(b"serving")
        ready.close()

    server = _Server(build_config(app, settings, metrics, options), started, _drain(app, settings))
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
    if not server.started:
        sys.exit(STARTUP_FAILURE)
