"""`RequestLayer`: the one ASGI layer of ours in front of every HTTP request and WebSocket
handshake (only `ws.SendBuffer` and Starlette's own error middleware are outside it).

In this order, for what used to be four middlewares:

1. text: a NUL in the decoded path, the query string or a header value is refused with 400
   `VALIDATION_FAILED` (`api/text.py` owns the rule; handshakes get an error frame and 1008);
2. budget: the request's database work shares one `SCOREBOARD_DB_TIMEOUT_SECONDS` budget
   (`scoreboard.deadline`); WebSocket connections keep the per-call bound;
3. body limit: a body over `max_bytes` (declared length or streamed) is refused with 413
   before the route reads it, so a huge body costs neither memory nor a half-done write;
4. metrics: requests counted and timed, labelled by route template (`scope["route"].path`,
   "unmatched" when no route took it); the 400 and the declared-length 413 above are
   answered before it, as they always were.

And first of all the request id (`scoreboard.logs`): a valid `X-Request-Id` of the client's,
or a new one, in the context of every log line of the request and in the `X-Request-Id`
header of every HTTP answer, the layer's own refusals included.

One pass over the headers serves the NUL check and the declared length; per request the
layer makes one small responder object and no closures.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson
from opentelemetry.propagate import extract
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scoreboard.api.errors import error_payload
from scoreboard.api.text import refuse_not_text
from scoreboard.deadline import request_budget
from scoreboard.logs import REQUEST_ID, RequestIds, request_id_from

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

REQUEST_ID_HEADER = b"x-request-id"

Observe = Callable[[str, str, int, float], None]


class _TooLarge(Exception):
    pass


def _scan(scope: Scope) -> tuple[str | None, bytes | None, bytes | None]:
    """(the first part of the request holding a NUL or None, the declared content-length
    or None, the client's request id or None): one pass over the headers."""
    declared: bytes | None = None
    given: bytes | None = None
    bad: str | None = None
    if "\x00" in scope["path"]:
        bad = "path"
    else:
        query: bytes = scope.get("query_string", b"")
        if b"%00" in query or b"\x00" in query:
            bad = "query"
    for name, value in scope["headers"]:
        if bad is None and b"\x00" in value:
            bad = f"header {name.decode('latin-1')}"
        if name == b"content-length":
            declared = value  # the last one, as `dict(headers)` had it
        elif name == REQUEST_ID_HEADER:
            given = value
    return bad, declared, given


def _request_id(given: bytes | None, ids: RequestIds) -> str:
    return request_id_from(given.decode("latin-1") if given is not None else None, ids)


def _tagged(send: Send, request_id: bytes) -> Send:
    """`send` adding the request id header (for the rare answers made before the responder)."""

    async def tagged(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {
                **message,
                "headers": [*message.get("headers", ()), (REQUEST_ID_HEADER, request_id)],
            }
        await send(message)

    return tagged


class RequestLayer:
    """Text guard, request budget, body limit and request metrics (module doc)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        budget_seconds: float,
        observe: Observe,
        tracer: Tracer | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.budget_seconds = budget_seconds
        self.observe = observe
        self.tracer = tracer  # a SERVER span per request when tracing (scoreboard.tracing)
        self.ids = RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind != "websocket":
                await self.app(scope, receive, send)
                return
            part, _, given = _scan(scope)
            token = REQUEST_ID.set(_request_id(given, self.ids))
            try:
                if part is not None:
                    await refuse_not_text(scope, receive, send, part)
                    return
                await self.app(scope, receive, send)
            finally:
                REQUEST_ID.reset(token)
            return
        part, declared, given = _scan(scope)
        request_id = _request_id(given, self.ids)
        token = REQUEST_ID.set(request_id)
        try:
            if part is not None:
                await refuse_not_text(scope, receive, _tagged(send, request_id.encode()), part)
                return
            with request_budget(self.budget_seconds):
                responder = _Responder(self, scope, receive, send, request_id.encode())
                if declared is not None and (
                    not declared.isdigit() or int(declared) > self.max_bytes
                ):
                    await responder.refuse()
                    return
                if self.tracer is None:
                    await responder.run()
                else:
                    await _traced(self.tracer, responder, request_id)
        finally:
            REQUEST_ID.reset(token)


class _ScopeHeaders(Getter[Scope]):
    """W3C trace-context headers read from an ASGI scope (tracing only)."""

    def get(self, carrier: Scope, key: str) -> list[str] | None:
        name = key.lower().encode("latin-1")
        values = [v.decode("latin-1") for k, v in carrier["headers"] if k == name]
        return values or None

    def keys(self, carrier: Scope) -> list[str]:
        return [k.decode("latin-1") for k, _ in carrier["headers"]]


_SCOPE_HEADERS = _ScopeHeaders()


async def _traced(tracer: Tracer, responder: _Responder, request_id: str) -> None:
    """The request as a SERVER span, child of the caller's `traceparent` when it sent one."""
    scope = responder.scope
    context = extract(scope, getter=_SCOPE_HEADERS)
    method = scope["method"]
    with tracer.start_as_current_span(method, context=context, kind=SpanKind.SERVER) as span:
        span.set_attribute("http.request.method", method)
        span.set_attribute("url.path", scope["path"])
        span.set_attribute("scoreboard.request_id", request_id)
        try:
            await responder.run()
        finally:
            route = getattr(scope.get("route"), "path", None)
            if route is not None:
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
            span.set_attribute("http.response.status_code", responder.status)
            if responder.status >= 500:
                span.set_status(StatusCode.ERROR)


class _Responder:
    """One request's state: bytes received so far, the status the app sent, whether the 413
    was sent."""

    __slots__ = (
        "layer",
        "receive",
        "received",
        "refused",
        "request_id",
        "scope",
        "send",
        "status",
        "too_large",
    )

    def __init__(
        self, layer: RequestLayer, scope: Scope, receive: Receive, send: Send, request_id: bytes
    ) -> None:
        self.layer = layer
        self.scope, self.receive, self.send = scope, receive, send
        self.request_id = request_id
        self.received = 0
        self.status = 500
        self.too_large = False
        self.refused = False

    async def run(self) -> None:
        scope = self.scope
        start = time.perf_counter()
        try:
            try:
                await self.layer.app(scope, self.limited_receive, self.guarded_send)
            finally:
                path = getattr(scope.get("route"), "path", "unmatched")
                self.layer.observe(scope["method"], path, self.status, time.perf_counter() - start)
        except _TooLarge:
            await self.refuse()

    async def limited_receive(self) -> Message:
        message = await self.receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.layer.max_bytes:
                self.too_large = True
                raise _TooLarge
        return message

    async def guarded_send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            headers = list(message.get("headers", ()))  # never the sender's own list
            headers.append((REQUEST_ID_HEADER, self.request_id))
            message = {**message, "headers": headers}
        # The framework may turn our receive error into its own 4xx: answer 413 instead.
        if self.too_large:
            await self.refuse()
            return
        await self.send(message)

    async def refuse(self) -> None:
        if self.refused:
            return
        self.refused = True
        message = f"The request body exceeds {self.layer.max_bytes} bytes."
        body = orjson.dumps(error_payload(self.scope, 413, "PAYLOAD_TOO_LARGE", message))
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
            (REQUEST_ID_HEADER, self.request_id),
        ]
        await self.send({"type": "http.response.start", "status": 413, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})
