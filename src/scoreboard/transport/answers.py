"""The answers the transport gives on its own: complete HTTP responses in the project's error
shape, encoded once per server, each with the metric that counts it."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING

import orjson
from prometheus_client import Counter
from websockets.exceptions import HeaderLineTooLong, RequestLineTooLong, TooManyHeaders

from scoreboard.api.errors import error_body
from scoreboard.metrics import Metrics

if TYPE_CHECKING:
    from scoreboard.transport.guard import TransportLimits


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


def _refusal(
    counter: Counter, status: int, code: str, message: str, *headers: tuple[bytes, bytes]
) -> Refusal:
    return Refusal(http_answer(status, code, message, headers), counter.inc)


class Answers:
    """Every refusal, encoded once per server (the error path allocates nothing either)."""

    def __init__(self, limits: TransportLimits, metrics: Metrics) -> None:
        closed, refused = metrics.connections_closed.labels, metrics.connections_refused.labels
        retry = (b"retry-after", b"%d" % max(1, math.ceil(limits.idle_timeout)))
        url, size, count = limits.max_url_bytes, limits.max_header_bytes, limits.max_headers
        self.uri_too_long = _refusal(
            closed("uri_too_long"), 414, "URI_TOO_LONG", f"The URL exceeds {url} bytes."
        )
        self.headers_too_large = _refusal(
            closed("headers_too_large"),
            431,
            "HEADERS_TOO_LARGE",
            f"The request headers exceed {size} bytes.",
        )
        self.too_many_headers = _refusal(
            closed("too_many_headers"),
            431,
            "HEADERS_TOO_LARGE",
            f"The request has more than {count} headers.",
        )
        self.malformed = _refusal(
            closed("malformed"), 400, "VALIDATION_FAILED", "Malformed HTTP request."
        )
        self.read_timeout = _refusal(
            closed("read_timeout"),
            408,
            "REQUEST_TIMEOUT",
            f"The request did not arrive in full within {limits.read_timeout:g} s.",
        )
        busy = "from your address (at most {}); close some or retry later."
        self.too_many_connections = _refusal(
            refused("connections_per_address"),
            503,
            "SERVICE_UNAVAILABLE",
            "Too many open connections " + busy.format(limits.max_connections_per_address),
            retry,
        )
        self.too_many_websockets = _refusal(
            refused("websockets_per_address"),
            503,
            "SERVICE_UNAVAILABLE",
            "Too many live connections " + busy.format(limits.max_websockets_per_address),
            retry,
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
