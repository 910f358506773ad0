"""`GuardedWebSocketProtocol`: uvicorn's websockets (sans-I/O) protocol, counted and answering.

Four additions to uvicorn's class:
- an idle connection holds less: lighter inbox and `writable` flag (`transport/slim.py`), and
  the handshake's request and response objects are dropped once the handshake is answered;
- it offers the app a `FrameSink` (`realtime/frames.py`) under the ASGI scope's extensions, so
  the live fan-out writes each pre-built frame to the socket as it is: one `transport.write`
  per client and change, with uvicorn's own checks (open, not closing, not paused by the
  transport's flow control) but no ASGI message, encoding or framing per client;
- it releases its client address's slot in the `ConnectionGuard` when the connection ends
  (the HTTP protocol took the slot and hands it over on upgrade);
- a handshake the websockets parser refuses (a request line over its 8 KiB, a header line
  over 8 KiB, more than 128 headers) is answered: websockets queues its own answer, but
  uvicorn never sends it, and the connection used to hang for ever. It gets the transport's
  414 / 431 / 400 in the project's error shape instead.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from uvicorn._types import ASGISendEvent
from uvicorn.config import Config
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.http11 import Request
from websockets.protocol import State

from scoreboard.realtime.frames import FRAME_SINK
from scoreboard.transport.guard import ConnectionGuard
from scoreboard.transport.slim import Flag, Inbox


class GuardedWebSocketProtocol(WebSocketsSansIOProtocol):
    guard: ClassVar[ConnectionGuard]  # set on the subclass `serve.protocol_classes` makes

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        host: str | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._host = host
        # Lighter than the asyncio objects uvicorn makes (an idle connection holds them).
        self.queue = Inbox()  # type: ignore[assignment]
        self.writable = Flag()  # type: ignore[assignment]

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if not self.close_sent and not self.conn.extensions:  # accepted, frames as built
            extensions: dict[str, object] = self.scope["extensions"]  # type: ignore[assignment]
            extensions[FRAME_SINK] = self

    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # The handshake's request and response (and their headers) are done with: the
            # app has its own copy of what it needs in the scope.
            # (websockets' parser keeps the request in a generator frame: empty its headers.)
            request = self.__dict__.pop("request", None)
            if isinstance(request, Request):
                request.headers.clear()
            self.__dict__.pop("response", None)

    # -- FrameSink ---------------------------------------------------------------------------
    def write_frame(self, data: bytes) -> bool:
        """As uvicorn's `send` of a `websocket.send`, for a frame already built."""
        if (
            self.disconnected
            or self.close_sent
            or not self.handshake_complete
            or self.conn.state is not State.OPEN
        ):
            raise ClientDisconnected()
        if not self.writable.is_set():
            return False
        self.transport.write(data)
        return True

    async def wait_writable(self) -> None:
        await self.writable.wait()

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            super().connection_lost(exc)
        finally:
            self.guard.release(self._host, websocket=True)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.handshake_initiated:
            return
        exc = self.conn.handshake_exc
        if exc is None or self.transport.is_closing():
            return
        self._refuse_handshake(exc)

    def handle_handshake_exception(self) -> None:
        # uvicorn >= 0.5x answers a refused handshake itself (plain text); ours has the
        # project's error shape. Older versions never call this (see `data_received`).
        exc = self.conn.handshake_exc
        if exc is None or self.transport.is_closing():
            super().handle_handshake_exception()
            return
        self._refuse_handshake(exc)

    def _refuse_handshake(self, exc: Exception) -> None:
        refusal = self.guard.answers.for_handshake_error(exc)
        refusal.count()
        self.handshake_complete = self.close_sent = True
        self.transport.write(refusal.response)
        self.transport.close()
