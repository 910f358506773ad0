"""A graceful drain: on SIGTERM `serve` keeps serving, but `/readyz` answers 503 for
`SCOREBOARD_DRAIN_SECONDS`, so a load balancer takes the process out of rotation before it
stops; then the server shuts down as before (requests in flight finish, live clients are closed
1012 "service restart" and reconnect to another process). A second SIGTERM, or SIGINT, stops at
once. The state is one object per app (`app.state.drain`), read by `/readyz` and set by
`transport.serve`."""

from __future__ import annotations

import time
from typing import Any


class Drain:
    def __init__(self) -> None:
        self.until: float | None = None

    @property
    def draining(self) -> bool:
        return self.until is not None

    def start(self, seconds: float) -> None:
        if self.until is None:
            self.until = time.monotonic() + seconds

    def over(self) -> bool:
        return self.until is not None and time.monotonic() >= self.until

    @staticmethod
    def of(app: Any) -> Drain | None:
        """The drain of an app made by `create_app` (None for any other ASGI app)."""
        drain = getattr(getattr(app, "state", None), "drain", None)
        return drain if isinstance(drain, Drain) else None
