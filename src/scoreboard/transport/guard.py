"""The transport limits, the per-address connection accounting and the pre-encoded answers."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus

import orjson
from websockets.exceptions import HeaderLineTooLong, RequestLineTooLong, TooManyHeaders

from scoreboard.api.errors import error_body
from scoreboard.config import Settings
from scoreboard.metrics import Metrics

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


def http_answer(
    status: int, code: str, message: str, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> bytes:
    """A complete HTTP/1.1 response in the project's error shape that closes the connection."""
    body = orjson.dumps(error_body(code, message))
    lines = [
        b"HTTP/1.1 %d %s" % (status, HTTPStatus(status).phrase.encode()),
        b"content-type: application/json",
        b"content-length: %d" % len(body),
        b"connection: close",
        *(name + b": " + value for name, value in headers),
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@dataclass(frozen=True)
class Refusal:
    """One answer the transport gives on its own, and the metric that counts it."""

    response: bytes
    count: Callable[[], None]


class Answers:
    """Every refusal, encoded once per server (the error path allocates nothing either)."""

    def __init__(self, limits: TransportLimits, metrics: Metrics) -> None:
        closed, refused = metrics.connections_closed, metrics.connections_refused
        retry = (b"retry-after", b"%d" % max(1, math.ceil(limits.idle_timeout)))
        self.uri_too_long = Refusal(
            http_answer(414, "URI_TOO_LONG", f"The URL exceeds {limits.max_url_bytes} bytes."),
            closed.labels("uri_too_long").inc,
        )
        self.headers_too_large = Refusal(
            http_answer(
                431,
                "HEADERS_TOO_LARGE",
                f"The request headers exceed {limits.max_header_bytes} bytes.",
            ),
            closed.labels("headers_too_large").inc,
        )
        self.too_many_headers = Refusal(
            http_answer(
                431, "HEADERS_TOO_LARGE", f"The request has more than {limits.max_headers} headers."
            ),
            closed.labels("too_many_headers").inc,
        )
        self.malformed = Refusal(
            http_answer(400, "VALIDATION_FAILED", "Malformed HTTP request."),
            closed.labels("malformed").inc,
        )
        self.read_timeout = Refusal(
            http_answer(
                408,
                "REQUEST_TIMEOUT",
                f"The request did not arrive in full within {limits.read_timeout:g} s.",
            ),
            closed.labels("read_timeout").inc,
        )
        self.too_many_connections = Refusal(
            http_answer(
                503,
                "SERVICE_UNAVAILABLE",
                f"Too many open connections from your address (at most "
                f"{limits.max_connections_per_address}); close some or retry later.",
                (retry,),
            ),
            refused.labels("connections_per_address").inc,
        )
        self.too_many_websockets = Refusal(
            http_answer(
                503,
                "SERVICE_UNAVAILABLE",
                f"Too many live connections from your address (at most "
                f"{limits.max_websockets_per_address}); close some or retry later.",
                (retry,),
            ),
            refused.labels("websockets_per_address").inc,
        )

    def for_handshake_error(self, exc: Exception) -> Refusal:
        """The answer to a WebSocket handshake the websockets parser refused."""
        if isinstance(exc, RequestLineTooLong):
            return self.uri_too_long
        if isinstance(exc, TooManyHeaders):
            return self.too_many_headers
        if isinstance(exc, HeaderLineTooLong):
            return self.headers_too_large
        return self.malformed


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
