"""Live leaderboard over WebSocket (API.md sections 2 and 5, "Live updates"): transport only.

A connection is one task, this endpoint's: `service.live` admits it (auth policy, parameters)
and subscribes it to the hub, then this reads client frames and hands each to the connection
(`service.live_connection`), answered before the next is read. Everything the server sends
on its own (board changes, keepalive pings, the close at token expiry) goes through the
`Subscriber`s' slots and is sent by a task that exists only while something is pending.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, WebSocket
from starlette.types import ASGIApp, Receive, Scope, Send

from scoreboard.container import Services
from scoreboard.domain.errors import DomainError
from scoreboard.realtime.frames import FRAME_SINK, FrameSink, TextFrame
from scoreboard.service.live import Refused
from scoreboard.service.live_connection import Connection, error_frame

log = logging.getLogger(__name__)


def offered_token(ws: WebSocket) -> tuple[str | None, str | None]:
    """(token, subprotocol to select): `?token=`, `Authorization: Bearer`, or `bearer, <JWT>`."""
    if token := ws.query_params.get("token"):
        return token, None
    header = ws.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip(), None
    protocols = [p.strip() for p in ws.headers.get("sec-websocket-protocol", "").split(",")]
    if len(protocols) >= 2 and protocols[0].lower() == "bearer" and protocols[1]:
        return protocols[1], "bearer"
    return None, None


async def _refuse(ws: WebSocket, subprotocol: str | None, error: DomainError, code: int) -> None:
    await ws.accept(subprotocol=subprotocol)
    await ws.send_text(error_frame(error))
    await ws.close(code=code, reason=error.message[:120])


class SendBuffer:
    """ASGI middleware: cap the kernel send buffer of every live connection's socket at
    `max_bytes` (the kernel doubles it), so a client that stops reading fills its buffers, and
    is noticed by the hub's sweep, after about that much instead of after the kernel's
    autotuned maximum (`net.ipv4.tcp_wmem`, megabytes). It uses the server's transport when
    the ASGI `send` it is given exposes one (uvicorn's protocols: `send.__self__.transport`);
    with another server it does nothing, and the sweep still works, only later. 0: off."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and self.max_bytes > 0:
            transport = getattr(getattr(send, "__self__", None), "transport", None)
            sock = transport.get_extra_info("socket") if transport is not None else None
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.max_bytes)
                except OSError:
                    log.debug("live: cannot cap the socket's send buffer", exc_info=True)
        await self.app(scope, receive, send)


class _SinkWire:
    """`realtime.subscriber.Wire` over the server's `FrameSink` (closes go through ASGI)."""

    __slots__ = ("_sink", "_ws")

    def __init__(self, ws: WebSocket, sink: FrameSink) -> None:
        self._ws = ws
        self._sink = sink

    def write(self, frame: TextFrame) -> bool:
        return self._sink.write_frame(frame.data)

    async def send(self, frame: TextFrame) -> None:
        while not self._sink.write_frame(frame.data):
            await self._sink.wait_writable()

    async def close(self, code: int, reason: str) -> None:
        await self._ws.close(code=code, reason=reason)


class _AsgiWire:
    """`realtime.subscriber.Wire` over a Starlette WebSocket (any other ASGI server)."""

    __slots__ = ("_ws",)

    def __init__(self, ws: WebSocket) -> None:
        self._ws = ws

    def write(self, frame: TextFrame) -> bool:
        return False

    async def send(self, frame: TextFrame) -> None:
        await self._ws.send({"type": "websocket.send", "text": frame.text})

    async def close(self, code: int, reason: str) -> None:
        await self._ws.close(code=code, reason=reason)


def wire_of(ws: WebSocket) -> _SinkWire | _AsgiWire:
    sink = ws.scope.get("extensions", {}).get(FRAME_SINK)
    return _AsgiWire(ws) if sink is None else _SinkWire(ws, sink)


def add_live_route(app: FastAPI, path: str, default_format: str) -> None:
    """The live endpoint at `path` as a plain Starlette `WebSocketRoute`: it takes no
    dependencies, and FastAPI's WebSocket route would hold its dependency machinery (two exit
    stacks and their frames) for as long as each connection lives. Not in the OpenAPI
    document either way."""
    app.router.add_websocket_route(path, make_endpoint(default_format))


def make_endpoint(default_format: str) -> Callable[[WebSocket], Awaitable[None]]:
    async def endpoint(websocket: WebSocket) -> None:
        services: Services = websocket.app.state.services
        token, subprotocol = offered_token(websocket)

        async def accept() -> None:
            await websocket.accept(subprotocol=subprotocol)

        gauge = services.metrics.ws_connections
        try:
            async with services.live.connection(
                token, websocket.query_params, default_format, wire_of(websocket), accept
            ) as connection:
                gauge.inc()
                try:
                    await _read(websocket, connection)
                except asyncio.CancelledError:
                    if not connection.abandoned:
                        raise
                    _uncancel()  # the hub gave up on this client (see Subscriber.abandon)
                finally:
                    gauge.dec()
        except Refused as refused:
            await _refuse(websocket, subprotocol, refused.error, refused.code)

    return endpoint


def _uncancel() -> None:
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


async def _read(ws: WebSocket, connection: Connection) -> None:
    """Client frames until the disconnect; each answered before the next is read, so a
    client's replies are paced by its own reading (a ping burst is answered, never queued)."""
    while True:
        frame = await ws.receive()
        if frame["type"] == "websocket.disconnect":
            return
        data = frame.get("text")
        if data is None:
            data = (frame.get("bytes") or b"").decode("utf-8", "replace")
        if len(data) > 64 * 1024:
            connection.too_big()
            continue
        try:
            await connection.handle(data)
        except Exception:
            return  # the connection is gone
