"""Compatibility routes: clients written against any of the five specifications work unchanged
(API.md section 4). Each specification's routes live in their own module over the same services
(users, scores, rate limits, idempotency keys and live updates are shared); `styles.py` renders
the specifications' own error bodies.
"""

from __future__ import annotations

from fastapi import FastAPI

from scoreboard.api import profile, ws
from scoreboard.api.compat import spec001, spec002_003, spec004
from scoreboard.realtime.dialects_compat import Seed003Dialect


def install(app: FastAPI) -> None:
    """Add every compatibility route and live endpoint to `app`."""
    app.include_router(profile.router)
    app.include_router(spec001.router)
    app.include_router(spec002_003.update_router)
    app.include_router(spec002_003.router)
    app.include_router(spec004.router)
    # 002's live endpoint speaks the canonical protocol; 003's its own snapshot/update/remove.
    ws.add_live_route(app, "/scoreboard", "canonical")
    ws.add_live_route(app, "/api/ws/leaderboard", Seed003Dialect.name)
