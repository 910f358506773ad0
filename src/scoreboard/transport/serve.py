"""Run the app under uvicorn with the guarded protocols (what `scoreboard serve` does)."""

from __future__ import annotations

import contextlib
import logging
import resource
import sys
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp
from uvicorn.config import STARTUP_FAILURE

from scoreboard.config import Settings
from scoreboard.metrics import Metrics
from scoreboard.transport.guard import ConnectionGuard, TransportLimits
from scoreboard.transport.http import GuardedHttpProtocol
from scoreboard.transport.websocket import GuardedWebSocketProtocol

log = logging.getLogger(__name__)

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
    server = uvicorn.Server(build_config(app, settings, metrics, options))
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
