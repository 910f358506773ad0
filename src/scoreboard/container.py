"""The wired services of one app instance. Built once by `app.create_app` from the settings;
the API reaches everything through it (no module-level clients)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from scoreboard.config import Settings
from scoreboard.domain.catalogue import Catalogue
from scoreboard.metrics import Metrics
from scoreboard.realtime.base import Broker, RankIndexes, RateLimiter
from scoreboard.realtime.dialects import DialectRegistry
from scoreboard.realtime.hub import Hub
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
from scoreboard.service.live import Live
from scoreboard.service.moderation import ModerationService
from scoreboard.service.profiles import ProfileService
from scoreboard.service.roles import RoleService
from scoreboard.service.rules import RuleEvaluator
from scoreboard.service.scoring import ScoringService
from scoreboard.service.server_writes import ServerWrites
from scoreboard.service.sessions import SessionService
from scoreboard.service.webhooks import WebhookService
from scoreboard.store.base import Store


@dataclass
class Services:
    settings: Settings
    catalogue: Catalogue
    store: Store
    indexes: RankIndexes
    broker: Broker
    limiter: RateLimiter
    committer: GroupCommitter
    board: LeaderboardService
    scoring: ScoringService
    identity: IdentityService
    sessions: SessionService  # refresh tokens and logout
    hub: Hub
    dialects: DialectRegistry
    metrics: Metrics
    avatars: AvatarCache
    actions: ActionService  # the action lifecycle (compatibility routes)
    profiles: ProfileService
    friends: FriendService
    live: Live
    webhooks: WebhookService
    apikeys: ApiKeys  # API keys; `apikeys.caller` authenticates a key or a user's token
    audit: AuditLog
    event_log: EventLogService  # the event-log query and its NDJSON export
    moderation: ModerationService
    rules: RuleEvaluator  # the anomaly rules' queue and background evaluation
    flags: FlagService  # the admins' side of flags
    roles: RoleService
    server_writes: ServerWrites
    history: HistoryUpkeep  # partitions ahead, idempotency retention
    redis_ping: Callable[[], Awaitable[Any]] | None = None  # None when no Redis is configured
