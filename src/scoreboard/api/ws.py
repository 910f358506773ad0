"""Live leaderboard over WebSocket (API.md section 2, "Live updates").

One connection = one hub subscriber plus three tasks: a sender draining the subscriber's
bounded queue, a receiver answering client frames, and a timer for keepalive pings and token
expiry. Whichever ends first ends the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import orjson
from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect

from scoreboard.api.errors import error_body
from scoreboard.container import Services
from scoreboard.domain.errors import DomainError, Unauthenticated, ValidationFailed
from scoreboard.domain.times import now_rfc3339
from scoreboard.realtime.dialects import Dialect
from scoreboard.realtime.hub import Close, Subscriber
from scoreboard.service.identity import Principal
from scoreboard.service.leaderboard import MAX_LIMIT, check_range, check_scope

CLOSE_UNAUTHENTICATED = 4401
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
SMALL_FRAME = 4096  # client frames are tiny control messages; larger ones are refused


def error_frame(error: DomainError) -> str:
    body = {"type": "error", "error": error_body(error.code, error.message, error.details)["error"]}
    return orjson.dumps(body).decode()


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


async def _authenticate(services: Services, token: str | None) -> Principal | None:
    if token is None:
        if services.settings.ws_require_auth:
            raise Unauthenticated("A token is required: ?token=, Authorization or subprotocol.")
        return None
    return await services.identity.authenticate(token)


def _parse_params(
    ws: WebSocket, services: Services, default_format: str
) -> tuple[str, int, Dialect]:
    raw_limit = ws.query_params.get("limit", "10")
    if not raw_limit.isdigit():
        raise ValidationFailed("limit must be an integer.", details={"field": "limit"})
    limit = check_range("limit", int(raw_limit), 1, MAX_LIMIT)
    scope = check_scope(ws.query_params.get("scope", "global"))
    dialect = services.dialects.get(ws.query_params.get("format", default_format))
    if dialect is None:
        names = ", ".join(services.dialects.names())
        raise ValidationFailed(f"Unknown format; known: {names}.", details={"field": "format"})
    return scope, limit, dialect


async def _refuse(ws: WebSocket, subprotocol: str | None, error: DomainError, code: int) -> None:
    await ws.accept(subprotocol=subprotocol)
    await ws.send_text(error_frame(error))
    await ws.close(code=code, reason=error.message[:120])


def make_endpoint(default_format: str) -> Callable[[WebSocket], Awaitable[None]]:
    async def endpoint(websocket: WebSocket) -> None:
        services: Services = websocket.app.state.services
        token, subprotocol = offered_token(websocket)
        try:
            principal = await _authenticate(services, token)
        except Unauthenticated as exc:
            await _refuse(websocket, subprotocol, exc, CLOSE_UNAUTHENTICATED)
            return
        try:
            scope, limit, dialect = _parse_params(websocket, services, default_format)
        except DomainError as exc:
            await _refuse(websocket, subprotocol, exc, CLOSE_POLICY)
            return
        await websocket.accept(subprotocol=subprotocol)
        sub = await services.hub.attach(scope, limit, dialect)
        services.metrics.ws_connections.inc()
        try:
            await _serve(websocket, services, sub, principal)
        finally:
            services.hub.detach(sub)
            services.metrics.ws_connections.dec()

    return endpoint


async def _serve(
    ws: WebSocket, services: Services, sub: Subscriber, principal: Principal | None
) -> None:
    tasks = [
        asyncio.create_task(_sender(ws, sub)),
        asyncio.create_task(_receiver(ws, sub)),
        asyncio.create_task(_timer(services.settings.ws_ping_seconds, sub, principal)),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _sender(ws: WebSocket, sub: Subscriber) -> None:
    while True:
        message = await sub.queue.get()
        if isinstance(message, Close):
            with contextlib.suppress(Exception):
                await ws.close(code=message.code, reason=message.reason)
            return
        sub.sent += 1
        await ws.send_text(message)


async def _receiver(ws: WebSocket, sub: Subscriber) -> None:
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            frame = await ws.receive()
            if frame["type"] == "websocket.disconnect":
                return
            data = frame.get("text")
            if data is None:
                data = (frame.get("bytes") or b"").decode("utf-8", "replace")
            if len(data) > 64 * 1024:
                sub.drop(CLOSE_TOO_BIG, "Frame too large.")
                continue
            sub.offer(reply_to(data))


def reply_to(data: str) -> str:
    """Answer one client frame: a pong, or a VALIDATION_FAILED error."""
    if len(data) > SMALL_FRAME:
        return error_frame(ValidationFailed(f"Frames are limited to {SMALL_FRAME} bytes."))
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError:
        return error_frame(ValidationFailed("Frames must be JSON."))
    if isinstance(message, dict) and message.get("type") == "ping":
        return orjson.dumps({"type": "pong", "timestamp": now_rfc3339()}).decode()
    return error_frame(ValidationFailed("Unknown message type; the only one is 'ping'."))


async def _timer(every: float, sub: Subscriber, principal: Principal | None) -> None:
    """Keepalive pings; at token expiry an UNAUTHENTICATED error, then close 4401."""
    expires_at = principal.expires_at if principal is not None else None
    while True:
        wait = every
        if expires_at is not None:
            wait = min(wait, max(0.0, expires_at - time.time()))
        await asyncio.sleep(wait)
        if expires_at is not None and time.time() >= expires_at:
            error = Unauthenticated("Authentication token expired.")
            sub.drop(CLOSE_UNAUTHENTICATED, "Token expired.", error_frame(error))
            # Stay alive: the sender ends the connection once the error and close are sent.
            await asyncio.get_running_loop().create_future()
        sub.offer(orjson.dumps({"type": "ping", "timestamp": now_rfc3339()}).decode())
