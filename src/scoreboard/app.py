"""`create_app(settings)`: the lifespan opens the backends and wires the services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from scoreboard import __version__
from scoreboard.api import compat, errors, ops, v1, ws
from scoreboard.api.middleware import BodyLimit, RequestMetrics
from scoreboard.backends import Backends, open_backends
from scoreboard.config import Settings
from scoreboard.container import Services
from scoreboard.domain.catalogue import Catalogue
from scoreboard.metrics import Metrics
from scoreboard.realtime.dialects import CanonicalDialect, DialectRegistry
from scoreboard.realtime.dialects_compat import COMPAT_DIALECTS
from scoreboard.realtime.hub import Hub
from scoreboard.service.committer import GroupCommitter
from scoreboard.service.identity import IdentityService
from scoreboard.service.leaderboard import LeaderboardService
from scoreboard.service.passwords import PasswordHasher
from scoreboard.service.scoring import ScoringService
from scoreboard.service.tokens import TokenIssuer, TokenVerifier, load_or_create_secret

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).parent / "web"


def build_services(settings: Settings, backends: Backends, metrics: Metrics) -> Services:
    catalogue = (
        Catalogue.from_file(settings.actions_file) if settings.actions_file else Catalogue.default()
    )
    secret = load_or_create_secret(settings)
    committer = GroupCommitter(
        backends.store,
        window_seconds=settings.commit_window_ms / 1000,
        max_batch=settings.commit_max_batch,
        on_batch=metrics.batch.observe,
    )
    board = LeaderboardService(backends.store, backends.index, backends.broker)
    identity = IdentityService(
        backends.store,
        PasswordHasher(settings.password_hash_concurrency),
        TokenIssuer.from_settings(settings, secret),
        TokenVerifier.from_settings(settings, secret),
        backends.limiter,
        settings.rate_limit_login,
        settings.rate_limit_register,
    )
    scoring = ScoringService(
        committer, board, catalogue, backends.limiter, settings.rate_limit_score
    )
    hub = Hub(
        board.top,
        tick_seconds=settings.ws_tick_ms / 1000,
        queue_size=settings.ws_queue_size,
        on_drop=metrics.ws_dropped.inc,
    )
    return Services(
        settings=settings,
        catalogue=catalogue,
        store=backends.store,
        index=backends.index,
        broker=backends.broker,
        limiter=backends.limiter,
        committer=committer,
        board=board,
        scoring=scoring,
        identity=identity,
        hub=hub,
        dialects=DialectRegistry([CanonicalDialect(), *COMPAT_DIALECTS]),
        metrics=metrics,
        redis_ping=backends.redis_ping,
    )


async def _maintain(services: Services) -> None:
    """Rebuild the index whenever it is marked unusable; periodically otherwise."""
    interval = services.settings.reconcile_seconds
    since = 0.0
    while True:
        await asyncio.sleep(1.0)
        since += 1.0
        due = interval > 0 and since >= interval
        if services.board.index_ready and not due:
            continue
        try:
            await services.board.reconcile(full=due)
            since = 0.0
        except Exception:
            log.warning("index reconcile failed; retrying", exc_info=True)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    backends = await open_backends(settings)
    services = build_services(settings, backends, app.state.metrics)
    app.state.services = services
    try:
        await services.board.rebuild()
    except Exception:
        log.warning("initial index build failed; serving from SQL until it succeeds")
    services.committer.start()
    services.hub.start()
    await services.broker.start(services.hub.on_message, services.hub.on_resync)
    maintainer = asyncio.create_task(_maintain(services), name="index-maintainer")
    try:
        yield
    finally:
        maintainer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await maintainer
        await services.hub.close()
        await services.committer.close()
        await backends.close()


def _mount_web(app: FastAPI) -> None:
    """The live scoreboard page at `/`, its assets under `/static` (no build step)."""

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(
        title="scoreboard",
        version=__version__,
        description="Real-time leaderboard: durable score events and a live top-N.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics = Metrics()
    errors.install(app)
    app.include_router(v1.router)
    app.include_router(ops.router)
    app.add_api_websocket_route("/ws/leaderboard", ws.make_endpoint("canonical"))
    compat.install(app)
    _mount_web(app)
    app.add_middleware(RequestMetrics, observe=metrics.observe_request)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app
