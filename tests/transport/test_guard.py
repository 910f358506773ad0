"""The per-address accounting, the limits from settings, the pre-encoded answers and the
open-files limit (scoreboard.transport.guard / serve)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import httptools
import pytest
from websockets.exceptions import (
    HeaderLineTooLong,
    InvalidMessage,
    RequestLineTooLong,
    TooManyHeaders,
)

from scoreboard.config import Settings
from scoreboard.metrics import Metrics
from scoreboard.transport.answers import http_answer
from scoreboard.transport.guard import ConnectionGuard, TransportLimits


def limits(connections: int = 2, websockets: int = 1) -> TransportLimits:
    return TransportLimits(
        max_url_bytes=1024,
        max_header_bytes=2048,
        max_headers=10,
        read_timeout=1.0,
        idle_timeout=2.5,
        max_connections_per_address=connections,
        max_websockets_per_address=websockets,
    )


def gauge(metrics: Metrics, kind: str) -> float | None:
    return metrics.registry.get_sample_value("scoreboard_connections_open", {"kind": kind})


def test_a_host_gets_its_cap_of_connections_and_no_more() -> None:
    metrics = Metrics()
    guard = ConnectionGuard(limits(connections=2), metrics)
    assert guard.admit("10.0.0.1") and guard.admit("10.0.0.1")
    assert not guard.admit("10.0.0.1")
    assert guard.admit("10.0.0.2")  # another address has its own slots
    assert guard.held("10.0.0.1") == (2, 0)
    assert gauge(metrics, "http") == 3
    guard.release("10.0.0.1", websocket=False)
    assert guard.admit("10.0.0.1")  # a released slot is free again


def test_websockets_count_against_both_caps() -> None:
    metrics = Metrics()
    guard = ConnectionGuard(limits(connections=3, websockets=1), metrics)
    assert guard.admit("h") and guard.admit("h")
    assert guard.upgrade("h")
    assert not guard.upgrade("h")  # the second live connection of "h" is refused
    assert guard.held("h") == (2, 1)
    assert (gauge(metrics, "http"), gauge(metrics, "websocket")) == (1, 1)
    guard.release("h", websocket=True)
    assert guard.held("h") == (1, 0)
    assert guard.upgrade("h")  # the remaining connection goes live
    assert guard.admit("h") and guard.admit("h")
    assert not guard.admit("h")  # 3 connections, one of them live


def test_zero_turns_a_cap_off_and_released_hosts_are_forgotten() -> None:
    guard = ConnectionGuard(limits(connections=0, websockets=0), Metrics())
    assert all(guard.admit("h") for _ in range(1000))
    assert all(guard.upgrade("h") for _ in range(1000))
    for _ in range(1000):
        guard.release("h", websocket=True)
    assert guard.held("h") == (0, 0)
    assert not guard._connections and not guard._websockets


def test_connections_without_an_address_are_only_gauged() -> None:
    metrics = Metrics()
    guard = ConnectionGuard(limits(connections=1), metrics)
    assert guard.admit(None) and guard.admit(None)
    assert gauge(metrics, "http") == 2
    guard.release(None, websocket=False)
    assert gauge(metrics, "http") == 1


def test_limits_come_from_the_settings() -> None:
    settings = Settings(
        max_url_bytes=4096,
        max_header_bytes=8192,
        max_headers=50,
        request_read_timeout_seconds=3,
        idle_timeout_seconds=4,
        max_connections_per_address=10,
        max_websockets_per_address=5,
    )
    got = TransportLimits.from_settings(settings)
    assert got == TransportLimits(4096, 8192, 50, 3.0, 4.0, 10, 5)
    assert got.head_budget > 4096 + 8192  # room for the framing of a head within the limits


class _Response:
    """Collects what httptools' response parser reads."""

    def __init__(self) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.body = b""
        self.complete = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete = True


def parse(raw: bytes) -> tuple[int, _Response]:
    response = _Response()
    parser = httptools.HttpResponseParser(response)
    parser.feed_data(raw)
    return parser.get_status_code(), response


def test_answers_are_complete_responses_in_the_error_shape() -> None:
    status, response = parse(http_answer(431, "HEADERS_TOO_LARGE", "Too big.", ((b"x-a", b"1"),)))
    assert status == 431 and response.complete
    assert json.loads(response.body) == {
        "error": {"code": "HEADERS_TOO_LARGE", "message": "Too big."}
    }
    assert response.headers[b"connection"] == b"close"
    assert response.headers[b"content-type"] == b"application/json"
    assert response.headers[b"x-a"] == b"1"


def test_refusals_count_and_tell_when_to_retry() -> None:
    metrics = Metrics()
    answers = ConnectionGuard(limits(connections=7), metrics).answers
    status, response = parse(answers.too_many_connections.response)
    assert status == 503 and response.headers[b"retry-after"] == b"3"  # ceil(idle timeout)
    assert b"at most 7" in response.body
    answers.too_many_connections.count()
    answers.uri_too_long.count()
    sample = metrics.registry.get_sample_value
    refused = {"reason": "connections_per_address"}
    assert sample("scoreboard_connections_refused_total", refused) == 1
    assert sample("scoreboard_connections_closed_total", {"reason": "uri_too_long"}) == 1


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (RequestLineTooLong("line too long"), 414),
        (HeaderLineTooLong("line too long"), 431),
        (TooManyHeaders("too many"), 431),
        (InvalidMessage("did not receive a valid HTTP request"), 400),
    ],
)
def test_handshake_errors_map_to_statuses(exc: Exception, status: int) -> None:
    answers = ConnectionGuard(limits(), Metrics()).answers
    assert parse(answers.for_handshake_error(exc).response)[0] == status


def test_serve_raises_the_open_files_soft_limit_to_the_hard_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip(f"the hard limit ({hard}) leaves nothing to raise")
    script = (
        "import resource\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))\n"
        "from scoreboard.transport.serve import raise_open_files_limit\n"
        "print(raise_open_files_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
    reported, soft = map(int, out.stdout.split())
    expected = (1 << 20) if hard == resource.RLIM_INFINITY else hard
    assert reported == soft == expected
