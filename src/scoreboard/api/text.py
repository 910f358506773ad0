"""The one owner of "input text is text": no NUL and no unpaired surrogate reaches a route.

Such characters are valid JSON escapes (`\\u0000`, `\\ud800`) and valid percent-encodings
(`%00`) but not text any backend stores: PostgreSQL refuses NUL in `text`, no encoder takes a
lone surrogate, and an Argon2 hash of one raised. They are refused with 400
`VALIDATION_FAILED` before any route runs, in two places that together see every input:

- `api.middleware.RequestLayer` (the one ASGI layer, in its single pass over the headers)
  checks the decoded path (path parameters), the query string and every header value, of
  HTTP requests and WebSocket handshakes alike, and answers with `refuse_not_text`. Percent-decoding
  replaces invalid UTF-8 with U+FFFD, so only NUL can arrive that way; it costs one substring
  search per part.
- `CheckedRoute` (the route class of every router) decodes JSON bodies with `decode_json`:
  orjson refuses unpaired surrogates (and nesting over 1024) itself, and the decoded value is
  walked for NUL only when the raw body holds a `\\u0000` escape, so a normal body costs no
  extra pass.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.types import Receive, Scope, Send

from scoreboard.api.errors import error_payload

NUL_ESCAPE = b"\\u0000"
NUL_MESSAGE = "Text must not contain NUL (\\u0000) characters."
Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in key or _has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


def decode_json(body: bytes) -> Any:
    """The JSON value of `body`; `json.JSONDecodeError` (FastAPI's 400 with the character
    offset) for invalid JSON, unpaired surrogates, nesting over 1024 levels, or NUL in any
    string or key."""
    value = orjson.loads(body)
    if NUL_ESCAPE in body and _has_nul(value):
        raise json.JSONDecodeError(
            NUL_MESSAGE, body.decode("utf-8", "replace"), body.find(NUL_ESCAPE)
        )
    return value


class CheckedRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = decode_json(await self.body())
        return self._json


class CheckedRoute(APIRoute):
    """An `APIRoute` whose JSON bodies are decoded by `decode_json` (FastAPI's documented way
    to change how a route reads its request)."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            return await handler(CheckedRequest(request.scope, request.receive))

        return checked


async def refuse_not_text(scope: Scope, receive: Receive, send: Send, part: str) -> None:
    """Answer a request or handshake whose `part` (path, query or a header) holds a NUL:
    400 `VALIDATION_FAILED`, or for a handshake an error frame and close 1008."""
    details = [{"field": part, "problem": NUL_MESSAGE}]
    payload = error_payload(scope, 400, "VALIDATION_FAILED", NUL_MESSAGE, details)
    if scope["type"] == "http":
        await _answer(send, 400, orjson.dumps(payload))
    else:
        await _refuse_handshake(receive, send, orjson.dumps(payload))


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _refuse_handshake(receive: Receive, send: Send, payload: bytes) -> None:
    """As the live endpoints refuse bad parameters: accept, one `error` frame, close 1008."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    frame = b'{"type":"error",' + payload[1:]
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": frame.decode()})
    await send({"type": "websocket.close", "code": 1008, "reason": NUL_MESSAGE})
