"""`GuardedHttpProtocol`: uvicorn's httptools protocol with the transport limits.

uvicorn's own protocol (0.54) bounds none of this: the size of a request head (httptools
gathers a header value of any length), the time before a first request, the time a request
takes to arrive. Here, per connection:

- the head's raw bytes are counted in `data_received` before httptools sees them, and it is
  fed at most `TransportLimits.head_budget` of one head, so an endless header costs no memory;
  the URL (`on_url`) and every header (`on_header`) are counted against their limits: 414 /
  431 in the project's error shape;
- a connection with no request begun closes after `idle_timeout` (also before its first
  request); a request must arrive in full, head and body, within `read_timeout` of its first
  bytes, else 408; a malformed request gets 400 — never a hang;
- it holds a slot of its client address in the `ConnectionGuard` for its whole life, handed
  to the WebSocket protocol on upgrade so a live connection stays counted until it closes.

The fast path (a request that arrives in one read) adds a few integer counters: no timer,
no copy of the bytes, no regular expression.
"""

from __future__ import annotations

import asyncio
from asyncio import TimerHandle
from typing import Any, ClassVar

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from scoreboard.transport.answers import Refusal
from scoreboard.transport.guard import ConnectionGuard
from scoreboard.transport.websocket import GuardedWebSocketProtocol

# After answering a refusal the server half-closes and reads (discarding) until the client
# closes, at most this long: closing at once with unread input would send a reset, and the
# client could lose the answer.
LINGER_SECONDS = 2.0


class _Refused(Exception):
    """Raised in a parser callback to stop parsing; the answer is in `_refusal`."""


class GuardedHttpProtocol(HttpToolsProtocol):
    guard: ClassVar[ConnectionGuard]  # set on the subclass `serve.protocol_classes` makes
    websocket_class: ClassVar[type[GuardedWebSocketProtocol]]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = self.guard.limits
        self.timeout_keep_alive = self.limits.idle_timeout  # type: ignore[assignment]
        self._host: str | None = None
        self._admitted = False
        self._done = False  # answered on our own or upgraded: nothing more is parsed
        self._in_head = True  # the next bytes belong to a request head
        self._heads = 0  # heads parsed on this connection
        self._partial = False  # a request has begun and not yet fully arrived
        self._head_left = self.limits.head_budget
        self._url_bytes = self._header_count = self._header_bytes = 0
        self._refusal: Refusal | None = None
        self._read_timer: TimerHandle | None = None
        self._linger_timer: TimerHandle | None = None

    # Connection life.
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._host = self.client[0] if self.client else None
        if not self.guard.admit(self._host):
            self._answer(self.guard.answers.too_many_connections)
            return
        self._admitted = True
        # uvicorn arms its keep-alive timer only after a response: arm it for the first
        # request too, or a connection that never sends a byte stays open for ever.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_read_timer()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
        if self._admitted:
            self._admitted = False
            self.guard.release(self._host, websocket=False)
        super().connection_lost(exc)

    def timeout_keep_alive_handler(self) -> None:
        if not self.transport.is_closing():
            self.guard.idle_closed()
            self.transport.close()

    # Bytes in.
    def data_received(self, data: bytes) -> None:
        if self._done:
            return  # lingering after an answer: the rest of the request is discarded
        if self._in_head and len(data) > self._head_left:
            self._feed_capped(data)
        else:
            if self._in_head:
                self._head_left -= len(data)
            self._feed(data)
        if self._partial and self._read_timer is None and not self._done:
            self._read_timer = self.loop.call_later(self.limits.read_timeout, self._read_timed_out)

    def _feed_capped(self, data: bytes) -> None:
        """Feed what is left of the head budget; if the head is still not complete, it is over
        its limits: answer without feeding the rest. Otherwise go on with the rest (a body,
        or the next request with a budget of its own)."""
        cut = max(self._head_left, 0)
        self._head_left -= cut
        heads = self._heads
        self._feed(data[:cut])
        if self._done:
            return
        if self._heads == heads:  # the head under way did not end within its budget
            too_long = self._url_bytes > self.limits.max_url_bytes
            answers = self.guard.answers
            self._answer(answers.uri_too_long if too_long else answers.headers_too_large)
            return
        self.data_received(data[cut:])

    def _feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError:  # also a callback's error, such as `_Refused`
            self._answer(self._refusal or self.guard.answers.malformed)

    # Parser callbacks: counters only.
    def on_message_begin(self) -> None:
        self._partial = True
        self._url_bytes = self._header_count = self._header_bytes = 0
        self._unset_keepalive_if_required()  # a request has begun: not idle any more
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._url_bytes += len(url)
        if self._url_bytes > self.limits.max_url_bytes:
            self._refuse(self.guard.answers.uri_too_long)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._header_bytes += len(name) + len(value)
        if self._header_count > self.limits.max_headers:
            self._refuse(self.guard.answers.too_many_headers)
        if self._header_bytes > self.limits.max_header_bytes:
            self._refuse(self.guard.answers.headers_too_large)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._heads += 1
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._partial = False
        self._in_head = True
        self._head_left = self.limits.head_budget
        self._cancel_read_timer()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._partial:  # a pipelined request is arriving: the read timeout governs it
            self._unset_keepalive_if_required()

    def _refuse(self, refusal: Refusal) -> None:
        self._refusal = refusal
        raise _Refused

    # Answers of our own.
    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        if not self._in_head and self.cycle is not None and self.cycle.response_started:
            # The app answered before the body arrived (a 413, say): a 408 now would be a
            # second answer to one request, so just close.
            self.guard.answers.read_timeout.count()
            self.transport.close()
            return
        self._answer(self.guard.answers.read_timeout)

    def handle_websocket_upgrade(self) -> None:
        self._cancel_read_timer()
        self._unset_keepalive_if_required()
        if not self.guard.upgrade(self._host):
            self._answer(self.guard.answers.too_many_websockets)
            return
        self._done = True
        self.connections.discard(self)
        # As uvicorn's own upgrade: the WebSocket protocol parses the handshake again.
        output = [self.scope["method"].encode(), b" ", self.url, b" HTTP/1.1\r\n"]
        for name, value in self.scope["headers"]:
            output += [name, b": ", value, b"\r\n"]
        output.append(b"\r\n")
        protocol = self.websocket_class(
            config=self.config,
            server_state=self.server_state,
            app_state=self.app_state,
            host=self._host,
        )
        self._admitted = False  # the slot is the WebSocket protocol's to release now
        protocol.connection_made(self.transport)
        protocol.data_received(b"".join(output))
        self.transport.set_protocol(protocol)

    def _answer(self, refusal: Refusal) -> None:
        """Answer on our own and close: write, half-close, discard input until the client
        closes or `LINGER_SECONDS` pass."""
        if self._done or self.transport.is_closing():
            return
        self._done = True
        self._cancel_read_timer()
        self._unset_keepalive_if_required()
        refusal.count()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if cycle.response_started:  # a pipelined request's answer is on the wire
                self.transport.close()
                return
            cycle.disconnected = True  # the app's answer would follow ours: it is dropped
            cycle.message_event.set()
        self.transport.write(refusal.response)
        self.flow.resume_reading()  # read on (and discard), to see the client's close
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._linger_timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _cancel_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None
