"""`RequestBudget`: every HTTP request's database work shares one `SCOREBOARD_DB_TIMEOUT_SECONDS`
budget (see `scoreboard.deadline`). WebSocket connections are long-lived: their calls keep the
per-call bound."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from scoreboard.deadline import request_budget


class RequestBudget:
    def __init__(self, app: ASGIApp, *, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with request_budget(self.seconds):
            await self.app(scope, receive, send)
