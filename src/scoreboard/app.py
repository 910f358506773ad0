"""`create_app(settings)`: the lifespan opens the backends and wires the services."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from opentelemetry.trace import Tracer

from scoreboard import __version__
from scoreboard.aio import resume_cancel
from scoreboard.api import (
    admin,
    admin_page,
    boards,
    compat,
    cors,
    docs_pages,
    errors,
    event_log,
    flags,
    moderation,
    openapi,
    ops,
    server_writes,
    sessions,
    v1,
    webhooks,
    ws,
)
from scoreboard.api.hot import HotRoutes
from scoreboard.api.middleware import RequestLayer
from scoreboard.backends import Backends, open_backends
from scoreboard.config import Settings
from scoreboard.container import Services
from scoreboard.domain.catalogue import Catalogue
from scoreboard.domain.ranking import RankedEntry
from scoreboard.drain import Drain
from scoreboard.metrics import Metrics
from scoreboard.realtime.dialects import CanonicalDialect, DialectRegistry
from scoreboard.realtime.dialects_compat import compat_dialects
from scoreboard.realtime.hub import Hub
from scoreboard.redact import install_log_redaction
from scoreboard.service.actions import ActionService
from scoreboard.service.apikeys import ApiKeys
from scoreboard.service.audit import AuditLog
from scoreboard.service.avatars import AvatarCache
from scoreboard.service.committer import GroupCommitter
from scoreboard.service.event_log import EventLogService
from scoreboard.service.flags import FlagService
from scoreboard.service.friends import FriendService
from scoreboard.service.history import HistoryUpkeep
from scoreboard.service.identity import IdentityService
from scoreboard.service.leaderboard import LeaderboardService
from scoreboard.service.limits import CountedLimiter
from scoreboard.service.live import Live
from scoreboard.service.moderation import ModerationService
from scoreboard.service.passwords import PasswordHasher
from scoreboard.service.profiles import ProfileService
from scoreboard.service.roles import RoleService
from scoreboard.service.rules import RuleEvaluator, address_key
from scoreboard.service.scoring import ScoringService
from scoreboard.service.server_writes import ServerWrites
from scoreboard.service.sessions import SessionService
from scoreboard.service.targets import Clock, system_clock
from scoreboard.service.tokens import TokenIssuer, TokenVerifier, load_or_create_secret
from scoreboard.service.topcache import TopCache
from scoreboard.service.webhooks import USER_FLAGGED, WebhookService
from scoreboard.single import serving_alone
from scoreboard.store.flags import FlagRecord
from scoreboard.store.guard import Guard
from scoreboard.tracing import provider_from_environment, traced, tracer_of

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).parent / "web"


def build_services(
    settings: Settings,
    backends: Backends,
    metrics: Metrics,
    tracer: Tracer | None = None,
    *,
    clock: Clock = system_clock,
) -> Services:
    catalogue = (
        Catalogue.from_file(settings.actions_file) if settings.actions_file else Catalogue.default()
    )
    secret = load_or_create_secret(settings)
    # Every refusal of a rate limit, whichever service asked, is counted here (one per 429).
    limiter = CountedLimiter(backends.limiter, metrics.limited)
    guard = getattr(backends.store, "guard", None)  # the SQL store's (`store.guard.Guard`)
    if isinstance(guard, Guard):
        guard.on_error = functools.partial(metrics.backend_error, "database")

    async def quarantine(flag: FlagRecord) -> bool:  # `moderator` is made below
        return await moderator.quarantine_flagged(flag)

    rules = RuleEvaluator(
        backends.store,
        settings.rules(),
        address_key(secret),
        clock,
        queue_size=settings.rules_queue_size,
        webhook_type=USER_FLAGGED if settings.webhooks_enabled else None,
        quarantine=quarantine,
        on_flag=metrics.flagged,
        on_dropped=metrics.rules_dropped.inc,
        on_failed=metrics.rules_failed.inc,
    )
    board = LeaderboardService(
        backends.store,
        backends.indexes,
        backends.broker,
        catalogue=backends.boards,
        clock=clock,
        cache=TopCache(max_age=settings.top_cache_seconds),
        check_seconds=settings.index_check_seconds,
        retention_days=settings.period_retention_days,
        on_rebuild=metrics.rebuilt,
        # Only the Redis broker can fail to publish (the in-process one always takes it).
        on_publish_failed=functools.partial(metrics.backend_error, "redis", "publish"),
    )
    committer = GroupCommitter(
        backends.store,
        window_seconds=settings.commit_window_ms / 1000,
        max_batch=settings.commit_max_batch,
        on_batch=metrics.batch.observe,
        on_commit_seconds=metrics.commit_seconds.observe,
        timeout=settings.db_timeout_seconds,
        after_commit=board.committed,
    )
    identity = IdentityService(
        backends.store,
        PasswordHasher(
            settings.password_hash_threads,
            queue=settings.password_hash_queue,
            wait_seconds=settings.password_hash_wait_seconds,
        ),
        TokenIssuer.from_settings(settings, secret),
        TokenVerifier.from_settings(settings, secret),
        limiter,
        settings.rate_limit_login,
        settings.rate_limit_register,
        on_deleted=board.removed,
        login_address_limit=settings.rate_limit_login_address,
        account_cache_seconds=settings.account_cache_seconds,
    )
    scoring = ScoringService(
        committer,
        board,
        catalogue,
        limiter,
        settings.rate_limit_score,
        settings.rate_limit_points,
        on_event=metrics.score_event,
        on_recorded=rules.committed,
    )
    avatars = AvatarCache(backends.store)

    async def hub_top(key: str, limit: int) -> list[RankedEntry]:  # `live` is made below
        return await live.top(key, limit)

    hub = Hub(
        hub_top,
        tick_seconds=settings.ws_tick_ms / 1000,
        ping_seconds=settings.ws_ping_seconds,
        send_timeout_seconds=settings.ws_send_timeout_seconds,
        on_drop=metrics.ws_dropped.inc,
        tracer=tracer,
        on_pass=metrics.fanned_out,
    )
    dialects = DialectRegistry([CanonicalDialect(), *compat_dialects(avatars.avatars)])
    live = Live(board, hub, dialects, identity.authenticate, require_auth=settings.ws_require_auth)
    audit = AuditLog(backends.store)

    async def audited(actor: str, action: str, target: str, reason: str) -> None:
        await audit.append(actor, action, target, reason)

    moderator = ModerationService(
        backends.store, board, audited, scoring, webhooks=settings.webhooks_enabled
    )

    return Services(
        settings=settings,
        catalogue=catalogue,
        store=backends.store,
        indexes=backends.indexes,
        broker=backends.broker,
        limiter=backends.limiter,
        committer=committer,
        board=board,
        scoring=scoring,
        identity=identity,
        sessions=SessionService(
            backends.store,
            identity,
            limiter,
            settings.rate_limit_refresh,
            settings.refresh_ttl_seconds,
            clock,
        ),
        hub=hub,
        dialects=dialects,
        live=live,
        metrics=metrics,
        avatars=avatars,
        actions=ActionService(
            backends.store,
            scoring,
            board,
            catalogue,
            limiter,
            settings.rate_limit_score,
            on_too_fast=rules.too_fast,
        ),
        profiles=ProfileService(backends.store, board, avatars),
        friends=FriendService(backends.store),
        webhooks=WebhookService.from_settings(
            settings, backends.store, backends.boards, clock, metrics.webhook_delivery
        ),
        apikeys=ApiKeys(
            backends.store, identity.authenticate, cache_seconds=settings.account_cache_seconds
        ),
        audit=audit,
        event_log=EventLogService(
            backends.store,
            chunk_size=settings.export_chunk_size,
            budget=settings.db_timeout_seconds,
        ),
        moderation=moderator,
        rules=rules,
        flags=FlagService(backends.store, moderator),
        roles=RoleService(backends.store),
        server_writes=ServerWrites(backends.store, scoring),
        history=HistoryUpkeep(backends.store, retention_days=settings.idempotency_retention_days),
        redis_ping=backends.redis_ping,
    )


async def _maintain(services: Services) -> None:
    """Rank-index upkeep: every `index_check_seconds` a step of `LeaderboardService.maintain`
    (watch the shared index, rebuild it when broken or lost), and every `reconcile_seconds`
    a comparison with the database. Each view's rebuild runs in a task of its own, so the
    watch of every other view keeps its pace meanwhile."""
    settings = services.settings
    last_full = time.monotonic()
    while True:
        await asyncio.sleep(settings.index_check_seconds)
        due = settings.reconcile_seconds > 0 and (
            time.monotonic() - last_full >= settings.reconcile_seconds
        )
        try:
            await services.board.maintain(full=due, wait=False)
        except Exception:
            log.exception("index upkeep failed; retrying")
        resume_cancel()  # a Redis call may swallow a cancel
        if due:
            last_full = time.monotonic()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    install_log_redaction()  # after uvicorn configured its loggers: no token in a log line
    with serving_alone(settings):  # embedded mode: refuse to be a second process
        async with _serving(app, settings):
            yield


@asynccontextmanager
async def _serving(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    tracer: Tracer | None = app.state.tracer
    metrics: Metrics = app.state.metrics
    backends = traced(await open_backends(settings, on_error=metrics.backend_error), tracer)
    services = build_services(settings, backends, metrics, tracer, clock=app.state.clock)
    app.state.services = services
    board, hub = services.board, services.hub
    # Rebuild the index before serving (or join another process's rebuild): events this
    # process committed before a crash may never have reached it. Reads use SQL until then.
    await board.maintain()
    await services.history.start()  # the event partitions ahead, then hourly upkeep

    live = services.live
    services.committer.start()
    services.rules.start()
    hub.start()
    board.start()
    live.start()
    services.webhooks.start()
    await services.broker.start(live.on_message, live.on_resync)
    maintainer = asyncio.create_task(_maintain(services), name="index-maintainer")
    # Everything start-up made (modules, the app, an in-memory index of the whole board)
    # lives as long as the process: out of the collector's view, full collections walk only
    # what requests and connections allocate, which keeps them out of live fan-out.
    gc.freeze()
    try:
        yield
    finally:
        maintainer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await maintainer
        await board.stop_upkeep()  # a rebuild it started in a task of its own
        await services.webhooks.close()
        await services.history.close()
        await live.close()
        await hub.close()
        await services.committer.close()
        await services.rules.close()
        await board.close()
        await backends.close()
        provider = app.state.tracer_provider
        if provider is not None:  # the last spans out before the process ends
            await asyncio.to_thread(provider.force_flush)


def _mount_web(app: FastAPI) -> None:
    """The live scoreboard page at `/`, the admin page at `/admin`, their assets under
    `/static` (no build step)."""

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/client.js", include_in_schema=False)
    async def client_module() -> FileResponse:
        """The live client as an ES module any site may import (README, "Embed the board")."""
        headers = {"Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*"}
        return FileResponse(WEB_DIR / "client.js", media_type="text/javascript", headers=headers)

    admin_page.install(app, WEB_DIR)  # the admin page at /admin
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")


def create_app(
    settings: Settings | None = None,
    *,
    hot_routes: bool = True,
    tracer_provider: Any = None,
    clock: Clock = system_clock,
) -> FastAPI:
    """The app. `hot_routes=False` leaves the hot routes to FastAPI alone (`api/hot.py`): the
    equivalence tests compare the two; it is not a setting. `clock`: the time events are
    dated with and periods computed from (tests move it; not a setting either).
    `tracer_provider`: an OpenTelemetry TracerProvider (tests); by default one from the
    OTEL_* environment, or none (`scoreboard.tracing`)."""
    settings = settings or Settings()
    app = FastAPI(
        # FastAPI's native OpenTelemetry is not used (metrics are Prometheus, `metrics.py`);
        # left on, it asks the global providers whether it is configured on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        title="scoreboard",
        version=__version__,
        description="Real-time leaderboard: durable score events and a live top-N.",
        lifespan=lifespan,
        generate_unique_id_function=openapi.operation_id,
        docs_url=None,  # served by api.docs_pages, with their assets (no CDN)
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.metrics = metrics = Metrics()
    app.state.drain = Drain()  # set by serve on SIGTERM, read by /readyz
    provider = tracer_provider if tracer_provider is not None else provider_from_environment()
    app.state.tracer_provider = provider
    app.state.tracer = tracer = tracer_of(provider)
    errors.install(app)
    app.include_router(v1.router)
    app.include_router(sessions.router)
    app.include_router(boards.router)
    app.include_router(server_writes.router)
    app.include_router(admin.router)
    app.include_router(moderation.router)
    app.include_router(event_log.router)
    app.include_router(flags.router)
    app.include_router(ops.router)
    app.include_router(webhooks.router)
    ws.add_live_route(app, "/ws/leaderboard", "canonical")
    compat.install(app)
    _mount_web(app)
    if hot_routes:  # inside the request layer: its checks, budget and metrics cover them
        app.add_middleware(HotRoutes)
    app.add_middleware(
        RequestLayer,
        max_bytes=settings.max_body_bytes,
        budget_seconds=settings.db_timeout_seconds,
        observe=metrics.observe_request,
        tracer=tracer,
    )
    cors.install(app, settings.cors_origins)  # around every HTTP answer, the layer's own too
    # Outermost of ours, so it is handed the server's own `send` (see ws.SendBuffer).
    app.add_middleware(ws.SendBuffer, max_bytes=settings.ws_socket_send_buffer_bytes)
    openapi.install(app)
    docs_pages.install(app, title=app.title)
    return app
