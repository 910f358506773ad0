from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.e2e.server import ServerProcess

FAST = {
    "SCOREBOARD_RATE_LIMIT_SCORE": "100000/minute",
    "SCOREBOARD_RATE_LIMIT_LOGIN": "100000/minute",
    "SCOREBOARD_RATE_LIMIT_LOGIN_ADDRESS": "100000/minute",
    # The default (cores - 1: one thread here) signs up a test's users one at a time; tests
    # that sign up several within seconds (the demo's eight) need the old capacity.
    "SCOREBOARD_PASSWORD_HASH_THREADS": "4",
    "SCOREBOARD_RATE_LIMIT_REGISTER": "100000/minute",
    "SCOREBOARD_WS_TICK_MS": "20",
}


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def factory(env: dict[str, str] | None = None, name: str = "srv") -> ServerProcess:
        values = {"SCOREBOARD_DATA_DIR": str(tmp_path / "data"), **FAST, **(env or {})}
        server = ServerProcess(tmp_path / name, values)
        started.append(server)
        return server.start()

    yield factory
    for server in started:
        server.stop()


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    """One server on the embedded default (SQLite file + in-process everything)."""
    return server_factory()
