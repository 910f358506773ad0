"""Prometheus metrics, on a registry owned by the app instance (no global registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


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
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.events = Counter(
            "scoreboard_score_events_total", "Score events by outcome", ["outcome"], registry=r
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
        self.rate_limited = Counter(
            "scoreboard_rate_limited_total", "Requests refused by rate limits", registry=r
        )
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

        # (method, route, status) -> its two children: `labels()` validates and locks on
        # every call, a measurable share of a fast request. It holds no more than the metrics
        # themselves keep (a child per label set, for the life of the registry).
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

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

    def render(self) -> bytes:
        return generate_latest(self.registry)
