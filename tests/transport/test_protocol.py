"""The guarded protocols inside a real uvicorn server (in this process, a tiny ASGI app):
what the limits must never break — keep-alive, pipelining, heads in many pieces, a head and
its body in one read — and that every connection's slot comes back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from tests.conftest import free_port
from uvicorn.protocols.utils import ClientDisconnected
from websockets.asyncio.client import connect

from scoreboard.config import Settings
from scoreboard.metrics import Metrics
from scoreboard.realtime.frames import FRAME_SINK, TextFrame
from scoreboard.transport.serve import ServeOptions, build_config

WAIT = 30.0


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """HTTP: answers the length of the body it read (`/early`: 204 at once, reading nothing).
    WebSocket: accepts and echoes."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
    elif scope["type"] == "http" and scope["path"] == "/early":  # answers without reading
        headers = [(b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
    elif scope["type"] == "http":
        size, more = 0, True
        while more:
            message = await receive()
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        body = json.dumps({"read": size, "path": scope["path"]}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    else:
        await receive()
        await send({"type": "websocket.accept"})
        sink = scope["extensions"].get(FRAME_SINK) if scope["path"] == "/sink" else None
        while (message := await receive())["type"] == "websocket.receive":
            if sink is None:
                await send({"type": "websocket.send", "text": message["text"]})
            else:  # the live fan-out's way: the frame built once, written as it is
                for _ in range(3):
                    while not sink.write_frame(TextFrame("sink:" + message["text"]).data):
                        await sink.wait_writable()
        if sink is not None:
            with pytest.raises(ClientDisconnected):  # the connection is gone: said so
                sink.write_frame(TextFrame("late").data)


@dataclass
class Running:
    port: int
    metrics: Metrics
    config: uvicorn.Config

    @property
    def guard(self) -> Any:
        return self.config.http_protocol_class.guard  # type: ignore[attr-defined]

    def open(self, kind: str) -> float | None:
        return self.metrics.registry.get_sample_value("scoreboard_connections_open", {"kind": kind})


async def start(**overrides: Any) -> tuple[Running, uvicorn.Server, asyncio.Task[None]]:
    values: dict[str, Any] = {
        "max_header_bytes": 16 * 1024,
        "max_connections_per_address": 50,
        "idle_timeout_seconds": 60,
        "request_read_timeout_seconds": 60,
        **overrides,
    }
    metrics = Metrics()
    port = free_port()
    options = ServeOptions(port=port, log_level="warning")
    config = build_config(echo, Settings(**values), metrics, options)  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(300):
        if server.started:
            break
        await asyncio.sleep(0.05)
    assert server.started
    return Running(port, metrics, config), server, task


@pytest.fixture
async def serve() -> AsyncIterator[Any]:
    """`await serve(**settings)`: a server with those settings, stopped after the test."""
    started: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def factory(**overrides: Any) -> Running:
        running, server, task = await start(**overrides)
        started.append((server, task))
        return running

    yield factory
    for server, task in started:
        server.should_exit = True
        await asyncio.wait_for(task, WAIT)


@pytest.fixture
async def running(serve: Any) -> Running:
    return await serve()  # type: ignore[no-any-return]


async def dial(running: Running) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", running.port)


async def response(reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    lines = head.decode().split("\r\n")
    length = next(int(x.split(":")[1]) for x in lines if x.lower().startswith("content-length"))
    body = await asyncio.wait_for(reader.readexactly(length), WAIT)
    return int(lines[0].split()[1]), json.loads(body)


def near_limit_headers() -> bytes:
    """15 KiB of headers: within the 16 KiB limit, so a request with them must pass."""
    return b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 1500) for i in range(10))


async def test_every_request_on_a_kept_alive_connection_has_its_own_budget(
    running: Running,
) -> None:
    reader, writer = await dial(running)
    for n in range(5):  # 5 x 15 KiB of headers: over the limit if the counters never reset
        writer.write(b"GET /r%d HTTP/1.1\r\nHost: x\r\n%s\r\n" % (n, near_limit_headers()))
        assert await response(reader) == (200, {"read": 0, "path": f"/r{n}"})
    writer.close()


async def test_pipelined_requests_in_one_read_are_all_answered(running: Running) -> None:
    reader, writer = await dial(running)
    writer.write(b"".join(b"GET /p%d HTTP/1.1\r\nHost: x\r\n\r\n" % n for n in range(20)))
    for n in range(20):
        assert await response(reader) == (200, {"read": 0, "path": f"/p{n}"})
    writer.close()


async def test_many_pipelined_requests_longer_than_a_head_budget(running: Running) -> None:
    # 2,000 small requests in one write (~60 KiB, over one head's budget): each head is
    # within the limits, so none may be refused for the bytes of the others.
    reader, writer = await dial(running)
    writer.write(b"".join(b"GET /q%d HTTP/1.1\r\nHost: x\r\n\r\n" % n for n in range(2000)))
    for n in range(2000):
        assert await response(reader) == (200, {"read": 0, "path": f"/q{n}"})
    writer.close()


async def test_a_head_in_many_pieces_is_parsed(running: Running) -> None:
    reader, writer = await dial(running)
    request = b"POST /slow HTTP/1.1\r\nHost: x\r\n%sContent-Length: 5\r\n\r\nhello" % (
        near_limit_headers()
    )
    for start in range(0, len(request), 997):
        writer.write(request[start : start + 997])
        await writer.drain()
        await asyncio.sleep(0)
    assert await response(reader) == (200, {"read": 5, "path": "/slow"})
    writer.close()


async def test_a_head_near_the_limit_and_its_body_in_one_read(running: Running) -> None:
    # The read is longer than the head budget, but the head within it is under the limits:
    # the protocol must feed the head, then the body, and not refuse.
    reader, writer = await dial(running)
    body = b"b" * 60_000
    head = b"POST /big HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n" % (
        near_limit_headers(),
        len(body),
    )
    writer.write(head + body + b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
    assert await response(reader) == (200, {"read": len(body), "path": "/big"})
    assert await response(reader) == (200, {"read": 0, "path": "/after"})
    writer.close()


async def wait_for(check: Any) -> bool:
    for _ in range(200):
        if check():
            return True
        await asyncio.sleep(0.05)
    return False


async def test_slots_come_back_when_connections_close(running: Running) -> None:
    conns = [await dial(running) for _ in range(10)]
    assert await wait_for(lambda: running.guard.held("127.0.0.1") == (10, 0))
    assert running.open("http") == 10
    for _, writer in conns:
        writer.close()
    assert await wait_for(lambda: running.guard.held("127.0.0.1") == (0, 0))
    assert running.open("http") == 0


async def test_a_websocket_holds_its_slot_until_it_closes(running: Running) -> None:
    async with connect(f"ws://127.0.0.1:{running.port}/ws", open_timeout=WAIT) as ws:
        await ws.send("hi")
        assert await asyncio.wait_for(ws.recv(), WAIT) == "hi"
        assert running.guard.held("127.0.0.1") == (1, 1)
        assert (running.open("http"), running.open("websocket")) == (0, 1)
    assert await wait_for(lambda: running.guard.held("127.0.0.1") == (0, 0))
    assert running.open("websocket") == 0


async def test_a_websocket_is_offered_the_frame_sink(running: Running) -> None:
    text = "é" * 15_000  # a 16-bit length frame (the server takes client frames to 64 KiB)
    async with connect(f"ws://127.0.0.1:{running.port}/sink", open_timeout=WAIT) as ws:
        await ws.send(text)
        for _ in range(3):
            assert await asyncio.wait_for(ws.recv(), WAIT) == "sink:" + text
        await ws.send("again")
        assert await asyncio.wait_for(ws.recv(), WAIT) == "sink:again"


async def status_of(running: Running, request: bytes) -> int:
    reader, writer = await dial(running)
    writer.write(request)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    writer.close()
    return int(head.split()[1])


async def test_the_size_settings_set_the_limits(serve: Any) -> None:
    running = await serve(max_url_bytes=512, max_header_bytes=2048, max_headers=10)
    url = b"/" + b"u" * 500
    assert await status_of(running, b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % url) == 200
    url = b"/" + b"u" * 600
    assert await status_of(running, b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % url) == 414
    fields = b"".join(b"X-%d: 1\r\n" % n for n in range(9))  # with Host: 10 headers
    assert await status_of(running, b"GET / HTTP/1.1\r\nHost: x\r\n%s\r\n" % fields) == 200
    fields += b"X-last: 1\r\n"
    assert await status_of(running, b"GET / HTTP/1.1\r\nHost: x\r\n%s\r\n" % fields) == 431
    big = b"X-Big: %s\r\n" % (b"b" * 1900)
    assert await status_of(running, b"GET / HTTP/1.1\r\nHost: x\r\n%s\r\n" % big) == 200
    big = b"X-Big: %s\r\n" % (b"b" * 2100)
    assert await status_of(running, b"GET / HTTP/1.1\r\nHost: x\r\n%s\r\n" % big) == 431


async def test_a_body_that_stalls_after_the_answer_gets_no_second_answer(serve: Any) -> None:
    running = await serve(request_read_timeout_seconds=0.5)
    reader, writer = await dial(running)
    writer.write(b"POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\npartial")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    assert head.startswith(b"HTTP/1.1 204 ")
    assert await asyncio.wait_for(reader.read(), WAIT) == b""  # closed, no 408 after the 204
    writer.close()
    closed = {"reason": "read_timeout"}
    assert (
        running.metrics.registry.get_sample_value("scoreboard_connections_closed_total", closed)
        == 1
    )
