"""`HotRoutes`: the three hot routes answered ahead of FastAPI's router.

`POST /api/v1/scores/events`, `GET /api/v1/leaderboard` and `GET /api/v1/leaderboard/me` are
most of the traffic, and FastAPI's request, dependency and validation machinery cost several
times the service call itself. This ASGI handler answers them directly: the query string, the
headers and the body are parsed by hand, the bearer token goes to the same
`identity.authenticate`, the same service call is made, and the answer is encoded with orjson.

It answers only what it is sure to answer as the FastAPI route would, byte for byte (the
request's form is the one the route documents, every parameter within its bounds). Anything
else — another method (HEAD, OPTIONS), a repeated parameter or header, a parameter the route
does not know, a percent-escape, a value out of bounds, another content type, a body that is
not exactly `{"action_type": "<text>"}`, a chunked body — falls through to the FastAPI route,
with the body it already read replayed, so every error that is not the service's is still
FastAPI's own. The service's errors are rendered by `errors.domain_response`, as the
exception handler does. The FastAPI routes stay registered: they are the OpenAPI document and
the fallback; `tests/api/test_hot_equivalence.py` compares the two answer for answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scoreboard.api.deps import bearer_token
from scoreboard.api.errors import domain_response
from scoreboard.api.text import decode_json
from scoreboard.api.v1 import score_event_body
from scoreboard.container import Services
from scoreboard.domain.errors import DomainError
from scoreboard.service.targets import MAX_AROUND, MAX_LIMIT, MAX_OFFSET

JSON_HEADERS = (b"content-type", b"application/json")
BOARD_PARAMS = frozenset({b"limit", b"offset", b"scope", b"period", b"region"})
MINE_PARAMS = frozenset({b"scope", b"around", b"period", b"region"})
WANTED = frozenset({b"authorization", b"content-type", b"content-length", b"idempotency-key"})
# Characters a query value may hold and mean itself (no escape, no `+`).
PLAIN = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


@dataclass(frozen=True, slots=True)
class HotRoute:
    """What `scope["route"]` holds for a request answered here: its template, as the request
    metrics label it (the FastAPI route's `path`)."""

    path: str


EVENTS = HotRoute("/api/v1/scores/events")
BOARD = HotRoute("/api/v1/leaderboard")
MINE = HotRoute("/api/v1/leaderboard/me")


Read = Callable[[Scope, Services], Awaitable[bytes]]


class _FallThrough(Exception):
    """The request is not one this handler is sure to answer as the route would."""


def _query(raw: bytes, known: frozenset[bytes]) -> dict[bytes, bytes]:
    """The plain `name=value` pairs of a query string, each name known and given once."""
    params: dict[bytes, bytes] = {}
    if not raw:
        return params
    for pair in raw.split(b"&"):
        name, sep, value = pair.partition(b"=")
        if not sep or name not in known or name in params or not PLAIN.issuperset(value):
            raise _FallThrough
        params[name] = value
    return params


def _text(params: dict[bytes, bytes], name: bytes, longest: int) -> str | None:
    """A text parameter as the route's `Query(max_length=longest)` takes it (plain only)."""
    raw = params.get(name)
    if raw is None:
        return None
    if len(raw) > longest:
        raise _FallThrough
    return raw.decode()


def _int(params: dict[bytes, bytes], name: bytes, default: int, low: int, high: int) -> int:
    """A parameter as the route's `Query(ge=low, le=high)` takes it, when plainly in bounds."""
    raw = params.get(name)
    if raw is None:
        return default
    # Digits only, no leading zero, short: anything else is left to the route's validation.
    if not raw.isdigit() or len(raw) > 10 or (raw[0] == 0x30 and len(raw) > 1):
        raise _FallThrough
    value = int(raw)
    if not low <= value <= high:
        raise _FallThrough
    return value


def _headers(scope: Scope) -> dict[bytes, bytes]:
    """The headers this handler reads, each given at most once."""
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name in WANTED:
            if name in found:
                raise _FallThrough
            found[name] = value
    return found


async def _send_json(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-length", b"%d" % len(body)), JSON_HEADERS]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _client(scope: Scope) -> str:
    """The client's address, as `deps.client_address` gives it to the FastAPI routes."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _services(scope: Scope) -> Services:
    """The app's services; before the lifespan has made them, or under a root path, the
    route answers."""
    services: Services | None = getattr(scope["app"].state, "services", None)
    if services is None or scope.get("root_path"):
        raise _FallThrough
    return services


class _Replay:
    """A `receive` that hands back the messages already read, then reads on."""

    __slots__ = ("messages", "receive")

    def __init__(self, messages: list[Message], receive: Receive) -> None:
        self.messages, self.receive = messages, receive

    async def __call__(self) -> Message:
        if self.messages:
            return self.messages.pop(0)
        return await self.receive()


class HotRoutes:
    """ASGI: the hot routes answered here, everything else passed to `app` (module doc)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path, method = scope["path"], scope["method"]
            if path == BOARD.path and method == "GET":
                await self._read(BOARD, self._board, scope, receive, send)
                return
            if path == MINE.path and method == "GET":
                await self._read(MINE, self._mine, scope, receive, send)
                return
            if path == EVENTS.path and method == "POST":
                await self._events(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _read(
        self, route: HotRoute, handler: Read, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Answer a read route with `handler`'s body, or fall through."""
        scope["route"] = route  # the router sets its own when the request falls through
        try:
            body = await handler(scope, _services(scope))
        except _FallThrough:
            await self.app(scope, receive, send)
            return
        except DomainError as error:
            await domain_response(error)(scope, receive, send)
            return
        await _send_json(send, 200, body)

    async def _board(self, scope: Scope, services: Services) -> bytes:
        params = _query(scope["query_string"], BOARD_PARAMS)
        limit = _int(params, b"limit", 10, 1, MAX_LIMIT)
        offset = _int(params, b"offset", 0, 0, MAX_OFFSET)
        board_scope = params.get(b"scope", b"global").decode()
        period, region = _text(params, b"period", 16), _text(params, b"region", 64)
        if offset == 0:  # the top: its body is encoded once per change, by the top cache
            return await services.board.page_json(board_scope, limit, period=period, region=region)
        page = await services.board.page(board_scope, limit, offset, period=period, region=region)
        return orjson.dumps(page.body())

    async def _mine(self, scope: Scope, services: Services) -> bytes:
        params = _query(scope["query_string"], MINE_PARAMS)
        headers = _headers(scope)
        around = _int(params, b"around", 1, 0, MAX_AROUND)
        board_scope = params.get(b"scope", b"global").decode()
        period, region = _text(params, b"period", 16), _text(params, b"region", 64)
        authorization = headers.get(b"authorization")
        token = bearer_token(None if authorization is None else authorization.decode("latin-1"))
        principal = await services.identity.authenticate(token)
        mine = await services.board.mine(
            board_scope,
            principal.user_id,
            principal.display_name,
            around,
            period=period,
            region=region,
        )
        assert mine.target is not None
        body = {
            **mine.target.head(),
            "user_id": mine.user_id,
            "display_name": mine.display_name,
            "score": mine.score,
            "rank": mine.rank,
            "around_me": [entry.as_dict() for entry in mine.around],
        }
        return orjson.dumps(body)

    async def _events(self, scope: Scope, receive: Receive, send: Send) -> None:
        read: list[Message] = []
        try:
            services = _services(scope)
            headers = _headers(scope)
            if (
                scope["query_string"]
                or headers.get(b"content-type") != b"application/json"
                or b"content-length" not in headers  # a chunked body: the route reads it
            ):
                raise _FallThrough
            value = decode_json(await _body(receive, read))
            if (
                not isinstance(value, dict)
                or len(value) != 1
                or type(action := value.get("action_type")) is not str
            ):
                raise _FallThrough
        except (_FallThrough, ValueError):  # ValueError: not JSON (decode_json)
            await self.app(scope, _Replay(read, receive), send)
            return
        scope["route"] = EVENTS
        key = headers.get(b"idempotency-key")
        authorization = headers.get(b"authorization")
        try:
            token = bearer_token(None if authorization is None else authorization.decode("latin-1"))
            principal = await services.identity.authenticate(token)
            result = await services.scoring.record(
                principal.user_id,
                action,
                idempotency_key=None if key is None else key.decode("latin-1"),
                client=_client(scope),
            )
        except DomainError as error:
            await domain_response(error)(scope, receive, send)
            return
        body = orjson.dumps(score_event_body(result))
        await _send_json(send, 200 if result.replayed else 201, body)


async def _body(receive: Receive, read: list[Message]) -> bytes:
    """The whole request body; every message read is kept in `read` (for a fall-through)."""
    chunks = []
    while True:
        message = await receive()
        read.append(message)
        if message["type"] != "http.request":
            raise _FallThrough  # the client went away: the route's own handling
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
