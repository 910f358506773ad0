"""`GuardedWebSocketProtocol`: uvicorn's websockets (sans-I/O) protocol, counted and answering.

Three additions to uvicorn's class:
- it caps the kernel send buffer of its socket (`SCOREBOARD_WS_SOCKET_SEND_BUFFER_BYTES`, the
  kernel doubles it), so a client that stops reading fills its buffers, and is noticed by the
  hub's sweep (close 1013), after about that much instead of after the kernel's autotuned
  maximum (`net.ipv4.tcp_wmem`, megabytes);
- it releases its client address's slot in the `ConnectionGuard` when the connection ends
  (the HTTP protocol took the slot and hands it over on upgrade);
- a handshake the websockets parser refuses (a request line over its 8 KiB, a header line
  over 8 KiB, more than 128 headers) is answered: websockets queues its own answer, but
  uvicorn never sends it, and the connection used to hang for ever. It gets the transport's
  414 / 431 / 400 in the project's error shape instead.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from asyncio import BaseTransport
from typing import Any, ClassVar

from uvicorn.config import Config
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

from scoreboard.transport.guard import ConnectionGuard

log = logging.getLogger(__name__)


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

    def connection_made(self, transport: BaseTransport) -> None:
        super().connection_made(transport)
        size = self.guard.limits.websocket_send_buffer
        sock = transport.get_extra_info("socket")
        if size > 0 and sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
            except OSError:
                log.debug("live: cannot cap the socket's send buffer", exc_info=True)

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
