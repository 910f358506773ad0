"""Prometheus metrics, on a registry owned by the app instance (no global registry)."""

from __future__ import annotations

import platform
import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from scoreboard import __version__
from scoreboard.domain.rules import RULE_NAMES

# The score events' outcomes (`score_event`): every scoring route's answer is one of these.
OUTCOMES = ("recorded", "replayed", "conflict", "rate_limited", "refused")
# How a webhook delivery attempt ended (`webhook_delivery`): delivered (2xx), retried later,
# or failed (the last attempt of one that is given up).
WEBHOOK_OUTCOMES = ("delivered", "retried", "failed")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "scoreboard_http_requests_total",
            "HTTP requests",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "scoreboard_http_request_seconds",
            "HTTP request latency",
            ["route"],
            registry=r,
            buckets=LATENCY_BUCKETS,
        )
        self.events = Counter(
            "scoreboard_score_events_total",
            "Score events by action and outcome",
            ["action", "outcome"],
            registry=r,
        )
        self.batch = Histogram(
            "scoreboard_commit_batch_size",
            "Events per group commit",
            registry=r,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
        )
        self.ws_connections = Gauge(
            "scoreboard_ws_connections", "Open live connections", registry=r
        )
        self.ws_dropped = Counter(
            "scoreboard_ws_dropped_total", "Live clients dropped for not reading", registry=r
        )
        self.commit_seconds = Histogram(
            "scoreboard_commit_seconds",
            "Duration of one group commit's store call",
            registry=r,
            buckets=LATENCY_BUCKETS,
        )
        self.rate_limited = Counter(
            "scoreboard_rate_limited_total",
            "Requests refused by a rate limit (answered 429)",
            ["limit"],
            registry=r,
        )
        self.ws_frames = Counter(
            "scoreboard_ws_frames_total",
            "Board frames handed to live clients by fan-out passes",
            registry=r,
        )
        self.fanout_seconds = Histogram(
            "scoreboard_fanout_seconds",
            "From the commit that changed the board to its fan-out pass's frames handed out",
            registry=r,
            buckets=LATENCY_BUCKETS,
        )
        self.backend_errors = Counter(
            "scoreboard_backend_errors_total",
            "Failed calls to a backend",
            ["backend", "operation"],
            registry=r,
        )
        self.index_rebuilds = Counter(
            "scoreboard_index_rebuilds_total",
            "Rank index rebuilds by this process",
            ["outcome"],
            registry=r,
        )
        self.build_info = Gauge(
            "scoreboard_build_info", "Version of the service", ["version", "python"], registry=r
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        # Transport limits (scoreboard.transport): open connections by kind (http, websocket),
        # connections refused by the per-address caps, and connections the server closed
        # because a limit or timeout was hit.
        self.connections_open = Gauge(
            "scoreboard_connections_open", "Open client connections", ["kind"], registry=r
        )
        self.connections_refused = Counter(
            "scoreboard_connections_refused_total",
            "Connections refused by a per-address cap",
            ["reason"],
            registry=r,
        )
        self.connections_closed = Counter(
            "scoreboard_connections_closed_total",
            "Connections closed by the server for a transport limit or timeout",
            ["reason"],
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "scoreboard_webhook_deliveries_total",
            "Webhook delivery attempts by outcome",
            ["outcome"],
            registry=r,
        )
        # Anomaly rules (service/rules.py, docs/RULES.md): flags written by rule, and events
        # the rules never saw: dropped by a full queue, or in a batch whose evaluation failed.
        self.flags = Counter(
            "scoreboard_flags_total", "Flags written by the anomaly rules", ["rule"], registry=r
        )
        for rule in RULE_NAMES:
            self.flags.labels(rule)
        self.rules_dropped = Counter(
            "scoreboard_rules_dropped_total",
            "Events not evaluated by the anomaly rules: their queue was full",
            registry=r,
        )
        self.rules_failed = Counter(
            "scoreboard_rules_failed_total",
            "Events not evaluated by the anomaly rules: their evaluation failed",
            registry=r,
        )

        # (method, route, status) -> its two children: `labels()` validates and locks on
        # every call, a measurable share of a fast request. It holds no more than the metrics
        # themselves keep (a child per label set, for the life of the registry).
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._event_children: dict[tuple[str, str], Counter] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(route),
            )
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def score_event(self, action: str, outcome: str) -> None:
        """One answer of a scoring route (`ScoringService`'s hook): `outcome` is one of
        `OUTCOMES`. Children are prebound per (action, outcome): no `labels()` per event."""
        child = self._event_children.get((action, outcome))
        if child is None:
            child = self._event_children[(action, outcome)] = self.events.labels(action, outcome)
        child.inc()

    def limited(self, limit: str) -> None:
        """One request refused by the rate limit named `limit` (`service.limits`)."""
        self.rate_limited.labels(limit).inc()

    def backend_error(self, backend: str, operation: str) -> None:
        self.backend_errors.labels(backend, operation).inc()

    def webhook_delivery(self, outcome: str) -> None:
        """One delivery attempt (`service.outbox.OutboxWorker`'s hook), `WEBHOOK_OUTCOMES`."""
        self.webhook_deliveries.labels(outcome).inc()

    def flagged(self, rule: str) -> None:
        """One flag written (`RuleEvaluator`'s hook), `rule` one of `domain.rules.RULE_NAMES`."""
        self.flags.labels(rule).inc()

    def rebuilt(self, outcome: str) -> None:
        self.index_rebuilds.labels(outcome).inc()

    def fanned_out(self, frames: int, since: float | None) -> None:
        """One fan-out pass (`Hub`'s hook): its frames, and the latency from the earliest
        commit it shows (wall clock, as the notice carried it) to now."""
        self.ws_frames.inc(frames)
        if since is not None:
            self.fanout_seconds.observe(max(0.0, time.time() - since))

    def render(self) -> bytes:
        return generate_latest(self.registry)
