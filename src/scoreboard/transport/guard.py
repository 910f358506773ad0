"""The transport limits and the per-address connection accounting."""

from __future__ import annotations

from dataclasses import dataclass

from scoreboard.config import Settings
from scoreboard.metrics import Metrics
from scoreboard.transport.answers import Answers

# Raw bytes of a request head beyond its URL and header names and values: the method, the
# version and line ends of the request line, and ": " and CRLF around every header.
_HEAD_FRAMING = 64
_PER_HEADER_FRAMING = 4


@dataclass(frozen=True)
class TransportLimits:
    max_url_bytes: int
    max_header_bytes: int  # names and values of all headers together
    max_headers: int
    read_timeout: float  # a request's head and body, from its first bytes
    idle_timeout: float  # a connection with no request begun
    max_connections_per_address: int  # 0: no cap
    max_websockets_per_address: int  # 0: no cap of its own

    @classmethod
    def from_settings(cls, settings: Settings) -> TransportLimits:
        return cls(
            max_url_bytes=settings.max_url_bytes,
            max_header_bytes=settings.max_header_bytes,
            max_headers=settings.max_headers,
            read_timeout=settings.request_read_timeout_seconds,
            idle_timeout=settings.idle_timeout_seconds,
            max_connections_per_address=settings.max_connections_per_address,
            max_websockets_per_address=settings.max_websockets_per_address,
        )

    @property
    def head_budget(self) -> int:
        """The most raw bytes a request head within every limit can take: what the parser is
        fed of a head at most, so an endless header costs this much memory, not more."""
        framing = _HEAD_FRAMING + _PER_HEADER_FRAMING * self.max_headers
        return self.max_url_bytes + self.max_header_bytes + framing


class ConnectionGuard:
    """Open connections per client address: HTTP and WebSocket together against
    `max_connections_per_address`, WebSockets also on their own against
    `max_websockets_per_address`. One per server, shared by the protocol of every connection
    (the event loop's thread only, so no lock). A connection without an address (a Unix
    socket) is counted in the gauge only.

    Contract: `admit` once per accepted connection; if it said yes, `release` exactly once
    when the connection ends, with `websocket=True` when `upgrade` said yes before."""

    def __init__(self, limits: TransportLimits, metrics: Metrics) -> None:
        self.limits = limits
        self.answers = Answers(limits, metrics)
        self._open_http = metrics.connections_open.labels("http")
        self._open_ws = metrics.connections_open.labels("websocket")
        self.idle_closed = metrics.connections_closed.labels("idle_timeout").inc
        self._connections: dict[str, int] = {}
        self._websockets: dict[str, int] = {}

    def admit(self, host: str | None) -> bool:
        """Take a connection slot for `host`; False when it has none left."""
        if host is not None:
            cap = self.limits.max_connections_per_address
            held = self._connections.get(host, 0)
            if cap and held >= cap:
                return False
            self._connections[host] = held + 1
        self._open_http.inc()
        return True

    def upgrade(self, host: str | None) -> bool:
        """Turn one of `host`'s connections into a WebSocket; False when it already holds its
        cap of them (the connection stays an HTTP one)."""
        if host is not None:
            cap = self.limits.max_websockets_per_address
            held = self._websockets.get(host, 0)
            if cap and held >= cap:
                return False
            self._websockets[host] = held + 1
        self._open_http.dec()
        self._open_ws.inc()
        return True

    def release(self, host: str | None, *, websocket: bool) -> None:
        (self._open_ws if websocket else self._open_http).dec()
        if host is None:
            return
        _drop(self._connections, host)
        if websocket:
            _drop(self._websockets, host)

    def held(self, host: str) -> tuple[int, int]:
        """(connections, WebSockets) `host` holds now."""
        return self._connections.get(host, 0), self._websockets.get(host, 0)


def _drop(counts: dict[str, int], host: str) -> None:
    # Entries at zero are removed, so the map holds only addresses with open connections.
    left = counts.get(host, 0) - 1
    if left > 0:
        counts[host] = left
    else:
        counts.pop(host, None)
