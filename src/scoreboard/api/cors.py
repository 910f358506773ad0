"""Browsers on other origins (API.md section 6): Starlette's `CORSMiddleware` for the origins
of `SCOREBOARD_CORS_ORIGINS` only (`config.Settings.cors_origins` checks and normalizes them).

- No origins configured (the default): no middleware at all, nothing changes.
- An allowed origin: preflights answered (the API's methods; `Authorization`, `Content-Type`
  and `Idempotency-Key` headers), and every answer carries `Access-Control-Allow-Origin` with
  that origin and exposes `Retry-After` (429 and 503 say when to retry). No credentials:
  the API takes bearer tokens, never cookies, so a browser has nothing ambient to send.
- Any other origin gets no `Access-Control-*` header: its request goes on without its
  `Origin` header, so a preflight is answered as if CORS were off (405, the documented
  error body) where Starlette alone would answer 400 listing the allowed methods and
  headers, and would add `Access-Control-Expose-Headers` to every answer. Every answer
  carries `Vary: Origin`, so a shared cache never hands one origin's answer to another.
- A preflight of an allowed origin asking for another method or header: Starlette's 400
  (plain text; the browser reads only its headers, which allow nothing more).
- `/client.js` sets `Access-Control-Allow-Origin: *` itself (any site may import the live
  client); an allowed origin sees its own origin there instead, any other still `*`.

WebSocket handshakes are not CORS requests: the middleware passes them through untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
HEADERS = ("Authorization", "Content-Type", "Idempotency-Key")
EXPOSED = ("Retry-After",)
MAX_AGE_SECONDS = 600


class Cors:
    """`CORSMiddleware` for `origins`; a request from any other origin is passed on as if it
    carried no `Origin` header (see the module docstring)."""

    def __init__(self, app: ASGIApp, origins: Sequence[str]) -> None:
        self._origins = frozenset(origin.encode("latin-1") for origin in origins)
        self._cors = CORSMiddleware(
            app,
            allow_origins=list(origins),
            allow_methods=METHODS,
            allow_headers=HEADERS,
            expose_headers=EXPOSED,
            max_age=MAX_AGE_SECONDS,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = scope["headers"]
            if any(name == b"origin" and value not in self._origins for name, value in headers):
                kept = [(name, value) for name, value in headers if name != b"origin"]
                scope = {**scope, "headers": kept}
        await self._cors(scope, receive, send)


def install(app: FastAPI, origins: Sequence[str]) -> None:
    """Add the CORS layer when origins are configured; call it after adding the request
    layer (`api/middleware.py`), so that it decorates every HTTP answer, the layer's own
    refusals (413, 400) included."""
    if origins:
        app.add_middleware(Cors, origins=origins)
