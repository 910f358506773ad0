"""`GuardedWebSocketProtocol`: uvicorn's websockets (sans-I/O) protocol, counted and answering.

Two additions to uvicorn's class:
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

from uvicorn.config import Config
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

from scoreboard.transport.guard import ConnectionGuard


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
        refusal = self.guard.answers.for_handshake_error(exc)
        refusal.count()
        self.handshake_complete = self.close_sent = True
        self.transport.write(refusal.response)
        self.transport.close()
