"""ASGI middleware: request body size cap, and request metrics."""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scoreboard.api.errors import error_payload


class _TooLarge(Exception):
    pass


class BodyLimit:
    """Refuse bodies over `max_bytes` with 413 before the route reads them (declared length or
    streamed), so a huge body costs neither memory nor a half-done write. The 413 body is the
    route's own error style (`error_payload`)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        responder = _LimitedResponder(self.app, self.max_bytes, scope, receive, send)
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await responder.refuse()
            return
        await responder.run()


class _LimitedResponder:
    """One request's state: bytes received so far, and whether the 413 was sent."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, scope: Scope, receive: Receive, send: Send
    ) -> None:
        self.app, self.max_bytes = app, max_bytes
        self.scope, self.receive, self.send = scope, receive, send
        self.received = 0
        self.too_large = False
        self.refused = False

    async def run(self) -> None:
        try:
            await self.app(self.scope, self.limited_receive, self.guarded_send)
        except _TooLarge:
            await self.refuse()

    async def limited_receive(self) -> Message:
        message = await self.receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.max_bytes:
                self.too_large = True
                raise _TooLarge
        return message

    async def guarded_send(self, message: Message) -> None:
        # The framework may turn our receive error into its own 4xx: answer 413 instead.
        if self.too_large:
            await self.refuse()
            return
        await self.send(message)

    async def refuse(self) -> None:
        if self.refused:
            return
        self.refused = True
        message = f"The request body exceeds {self.max_bytes} bytes."
        body = orjson.dumps(error_payload(self.scope, 413, "PAYLOAD_TOO_LARGE", message))
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await self.send({"type": "http.response.start", "status": 413, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})


class RequestMetrics:
    """Counts requests and times them, labelled by route template (not raw path)."""

    def __init__(self, app: ASGIApp, observe: Callable[[str, str, int, float], None]) -> None:
        self.app = app
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            self.observe(scope["method"], path, status, time.perf_counter() - start)
