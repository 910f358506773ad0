"""Malformed and hostile traffic against a real `scoreboard serve`, over raw sockets: huge and
numerous headers, long request lines, slow and idle connections, bad `Content-Length`,
oversize WebSocket handshakes, too many connections from one address — each answered in the
error shape (or closed), counted in /metrics, and normal requests served meanwhile.

Every loop is bounded; every wait has a generous timeout instead of a timing assertion (a
server without the limits fails by not answering before the timeout)."""

from __future__ import annotations

import json
import resource
import select
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.e2e.conftest import FAST
from tests.e2e.server import ServerProcess
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

pytestmark = pytest.mark.e2e

OPEN_FILES = 512  # the soft limit the servers start with; `serve` raises it
WAIT = 30.0  # seconds a socket waits for the server; the limits under test are 1-2 s
HANDSHAKE = (
    b"Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def _serve(workdir: Path, env: dict[str, str]) -> Iterator[ServerProcess]:
    values = {"SCOREBOARD_DATA_DIR": str(workdir / "data"), **FAST, **env}
    server = ServerProcess(workdir, values, open_files=OPEN_FILES)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Short timeouts, default size limits."""
    env = {
        "SCOREBOARD_REQUEST_READ_TIMEOUT_SECONDS": "1.5",
        "SCOREBOARD_IDLE_TIMEOUT_SECONDS": "1.5",
    }
    yield from _serve(tmp_path_factory.mktemp("tight"), env)


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Low per-address caps, long timeouts (the held connections must not expire)."""
    env = {
        "SCOREBOARD_MAX_CONNECTIONS_PER_ADDRESS": "8",
        "SCOREBOARD_MAX_WEBSOCKETS_PER_ADDRESS": "2",
        "SCOREBOARD_IDLE_TIMEOUT_SECONDS": "300",
        "SCOREBOARD_REQUEST_READ_TIMEOUT_SECONDS": "300",
        "SCOREBOARD_WS_REQUIRE_AUTH": "false",
    }
    yield from _serve(tmp_path_factory.mktemp("capped"), env)


@pytest.fixture(scope="module")
def crowded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Default caps, started with a soft limit of 1024 open files; long idle timeout."""
    env = {"SCOREBOARD_IDLE_TIMEOUT_SECONDS": "300"}
    workdir = tmp_path_factory.mktemp("crowded")
    values = {"SCOREBOARD_DATA_DIR": str(workdir / "data"), **FAST, **env}
    server = ServerProcess(workdir, values, open_files=1024)
    server.start()
    yield server
    server.stop()


def dial(server: ServerProcess, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), WAIT, (source, 0))
    sock.settimeout(WAIT)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (a server that never does: timeout)."""
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def exchange(server: ServerProcess, data: bytes) -> bytes:
    with dial(server) as sock:
        sock.sendall(data)
        return read_all(sock)


def answer(raw: bytes) -> tuple[int, dict[str, str], dict[str, object]]:
    """(status, headers, JSON body) of one HTTP response that ends the connection."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body)


def error_code(raw: bytes, status: int) -> str:
    got, headers, body = answer(raw)
    assert got == status, raw[:300]
    assert headers["content-type"] == "application/json"
    assert set(body) == {"error"}
    error = body["error"]
    assert isinstance(error, dict) and isinstance(error["message"], str)
    return str(error["code"])


def metric(server: ServerProcess, name: str, **labels: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=WAIT).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def closed(server: ServerProcess, reason: str) -> float:
    return metric(server, "scoreboard_connections_closed_total", reason=reason)


def healthy(server: ServerProcess) -> bool:
    return httpx.get(f"{server.url}/healthz", timeout=WAIT).status_code == 200


def eventually(check: Callable[[], bool], attempts: int = 50) -> bool:
    for _ in range(attempts):
        if check():
            return True
        time.sleep(0.2)
    return False


def rss_kib(server: ServerProcess) -> int:
    assert server.proc is not None
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def stream_header(sock: socket.socket, megabytes: int) -> bytes:
    """Send one header value of up to `megabytes` MiB, 1 MiB at a time, until the server
    answers or stops reading; return its answer (b"" if none)."""
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
    chunk = b"a" * (1 << 20)
    for _ in range(megabytes):
        if select.select([sock], [], [], 0)[0]:
            break
        try:
            sock.sendall(chunk)
        except OSError:
            break
    if not select.select([sock], [], [], 5)[0]:
        return b""
    try:
        return read_all(sock)
    except OSError:  # reset after the answer: what arrived before it counts
        return b""


def test_huge_headers_get_431_and_cost_no_memory(tight: ServerProcess) -> None:
    before, counted = rss_kib(tight), closed(tight, "headers_too_large")
    socks = [dial(tight) for _ in range(4)]
    try:
        answers = [stream_header(sock, 32) for sock in socks]  # up to 128 MiB in all
        grown_mib = (rss_kib(tight) - before) / 1024
        assert healthy(tight)  # a normal request meanwhile
    finally:
        for sock in socks:
            sock.close()
    assert grown_mib < 48, f"the server grew by {grown_mib:.0f} MiB"
    assert [error_code(raw, 431) for raw in answers] == ["HEADERS_TOO_LARGE"] * 4
    assert closed(tight, "headers_too_large") == counted + 4


def test_one_100_kib_header_gets_431(tight: ServerProcess) -> None:
    raw = exchange(tight, b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
    assert error_code(raw, 431) == "HEADERS_TOO_LARGE"


def test_too_many_headers_get_431(tight: ServerProcess) -> None:
    counted = closed(tight, "too_many_headers")
    fields = b"".join(b"X-F%d: 1\r\n" % i for i in range(3000))
    raw = exchange(tight, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + fields + b"\r\n")
    assert error_code(raw, 431) == "HEADERS_TOO_LARGE"
    assert closed(tight, "too_many_headers") == counted + 1


def test_a_long_request_line_gets_414(tight: ServerProcess) -> None:
    counted = closed(tight, "uri_too_long")
    raw = exchange(tight, b"GET /healthz?q=" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert error_code(raw, 414) == "URI_TOO_LONG"
    assert closed(tight, "uri_too_long") == counted + 1


@pytest.mark.parametrize("query_bytes", [8_170, 20_000])
def test_an_oversize_websocket_handshake_is_answered(
    tight: ServerProcess, query_bytes: int
) -> None:
    # 8,170: within the server's URL limit but over the websockets parser's 8 KiB line,
    # which used to leave the handshake unanswered for ever; 20,000: over the URL limit.
    request = b"GET /ws/leaderboard?q=" + b"a" * query_bytes + b" HTTP/1.1\r\n" + HANDSHAKE
    assert error_code(exchange(tight, request), 414) == "URI_TOO_LONG"
    assert healthy(tight)


def test_an_oversize_websocket_header_line_gets_431(tight: ServerProcess) -> None:
    request = b"GET /ws/leaderboard HTTP/1.1\r\nX-Big: " + b"b" * 9000 + b"\r\n" + HANDSHAKE
    assert error_code(exchange(tight, request), 431) == "HEADERS_TOO_LARGE"


def test_partial_headers_get_408_after_the_read_timeout(tight: ServerProcess) -> None:
    counted = closed(tight, "read_timeout")
    with dial(tight) as slow:
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        assert healthy(tight)
        raw = read_all(slow)
    assert error_code(raw, 408) == "REQUEST_TIMEOUT"
    assert closed(tight, "read_timeout") == counted + 1


def test_a_body_shorter_than_its_content_length_gets_408(tight: ServerProcess) -> None:
    head = b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    raw = exchange(tight, head + b"Content-Length: 100\r\n\r\n{")
    assert error_code(raw, 408) == "REQUEST_TIMEOUT"


def test_an_idle_connection_is_closed(tight: ServerProcess) -> None:
    counted = closed(tight, "idle_timeout")
    with dial(tight) as idle:
        assert read_all(idle) == b""  # never sent a byte: closed after the idle timeout
    with dial(tight) as kept:  # and after a response, on a kept-alive connection
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_all(kept).startswith(b"HTTP/1.1 200 ")
    assert closed(tight, "idle_timeout") == counted + 2


def test_blank_lines_do_not_keep_a_connection_open(tight: ServerProcess) -> None:
    with dial(tight) as sock:
        sock.sendall(b"\r\n")  # ignored before a request: it must not count as one
        assert read_all(sock) == b""


@pytest.mark.parametrize(
    "lengths",
    [
        b"Content-Length: abc\r\n",
        b"Content-Length: -1\r\n",
        b"Content-Length: 1e3\r\n",
        b"Content-Length: 2\r\nContent-Length: 3\r\n",
        b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n",
    ],
)
def test_bad_content_length_gets_400(tight: ServerProcess, lengths: bytes) -> None:
    counted = closed(tight, "malformed")
    head = b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    raw = exchange(tight, head + lengths + b"\r\n{}")
    assert error_code(raw, 400) == "VALIDATION_FAILED"
    assert closed(tight, "malformed") == counted + 1
    assert healthy(tight)


def test_the_per_address_cap_refuses_the_extra_connection(capped: ServerProcess) -> None:
    # The held connections come from 127.0.0.2, so 127.0.0.1 (metrics, healthz) stays free.
    reason = "connections_per_address"
    refused = metric(capped, "scoreboard_connections_refused_total", reason=reason)
    held = [dial(capped, "127.0.0.2") for _ in range(8)]
    try:
        with dial(capped, "127.0.0.2") as extra:
            extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, body = answer(read_all(extra))
        assert (status, body["error"]["code"]) == (503, "SERVICE_UNAVAILABLE")  # type: ignore[index]
        assert int(headers["retry-after"]) >= 1
        assert healthy(capped)  # another address is served meanwhile
        assert metric(capped, "scoreboard_connections_open", kind="http") >= 8
        assert metric(capped, "scoreboard_connections_refused_total", reason=reason) == refused + 1
    finally:
        for sock in held:
            sock.close()

    def served_again() -> bool:  # slots come back when the server sees the closes
        with dial(capped, "127.0.0.2") as again:
            again.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return read_all(again).startswith(b"HTTP/1.1 200 ")

    assert eventually(served_again)


def live(server: ServerProcess, source: str) -> ClientConnection:
    url = f"{server.ws_url}/ws/leaderboard"
    return connect(url, open_timeout=WAIT, source_address=(source, 0))


def test_the_websocket_cap_refuses_the_extra_live_connection(capped: ServerProcess) -> None:
    reason = "websockets_per_address"
    refused = metric(capped, "scoreboard_connections_refused_total", reason=reason)
    with live(capped, "127.0.0.3") as first, live(capped, "127.0.0.3"):
        assert json.loads(first.recv(WAIT))["type"] == "snapshot"
        with pytest.raises(InvalidStatus) as refusal, live(capped, "127.0.0.3"):
            pass
        assert refusal.value.response.status_code == 503
        assert metric(capped, "scoreboard_connections_open", kind="websocket") == 2
        assert metric(capped, "scoreboard_connections_refused_total", reason=reason) == refused + 1
        with dial(capped, "127.0.0.3") as plain:  # HTTP from that address still works
            plain.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert read_all(plain).startswith(b"HTTP/1.1 200 ")

    def live_again() -> bool:  # the slot comes back when the server sees the close
        try:
            with live(capped, "127.0.0.3") as again:
                return bool(json.loads(again.recv(WAIT))["type"] == "snapshot")
        except InvalidStatus:
            return False

    assert eventually(live_again)


def test_serve_raises_the_open_files_limit(tight: ServerProcess) -> None:
    assert tight.proc is not None
    limits = Path(f"/proc/{tight.proc.pid}/limits").read_text().splitlines()
    soft, hard = next(line for line in limits if line.startswith("Max open files")).split()[3:5]
    if hard == str(OPEN_FILES):
        pytest.skip("the hard limit leaves nothing to raise")
    assert soft == (str(1 << 20) if hard == "unlimited" else hard)


def test_a_normal_request_is_served_beside_1100_idle_sockets(crowded: ServerProcess) -> None:
    # The case: 1,100 idle sockets under `ulimit -n 1024` made a normal request fail.
    # From five addresses (220 each, under the per-address cap), so none is refused.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1400:
        pytest.skip(f"the hard limit on open files ({hard}) is too low for this test")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    idle = [dial(crowded, f"127.0.0.{10 + n % 5}") for n in range(1100)]
    try:
        assert healthy(crowded)

        def all_accepted() -> bool:
            return metric(crowded, "scoreboard_connections_open", kind="http") > 1100

        assert eventually(all_accepted)
        reason = "connections_per_address"
        assert metric(crowded, "scoreboard_connections_refused_total", reason=reason) == 0
    finally:
        for sock in idle:
            sock.close()
