"""The embedded default is one process: a second `scoreboard serve` on the same SQLite database
refuses to start (saying why and what to use instead), and a crash never leaves it locked out.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from tests.e2e.conftest import FAST
from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.e2e


def second(tmp_path: Path, data: Path, name: str = "second") -> ServerProcess:
    return ServerProcess(tmp_path / name, {**FAST, "SCOREBOARD_DATA_DIR": str(data)})


def test_second_embedded_server_refuses_to_start(
    tmp_path: Path, server_factory: Callable[..., ServerProcess]
) -> None:
    first = server_factory()
    other = second(tmp_path, tmp_path / "data")
    proc = other.spawn()
    code = proc.wait(60)
    assert code == 3
    log = other.log()
    assert "already serving the embedded database" in log
    assert "Traceback" not in log  # one message saying why, not a stack
    assert f"process {first.proc.pid if first.proc else ''}" in log
    assert "PostgreSQL + Redis" in log and "docs/SCALING.md" in log
    # The first one is untouched and still serves.
    assert httpx.get(f"{first.url}/readyz", timeout=10).status_code == 200


def test_a_crashed_server_does_not_lock_the_next_one_out(
    tmp_path: Path, server_factory: Callable[..., ServerProcess]
) -> None:
    first = server_factory()
    first.kill()  # SIGKILL: no clean shutdown, the kernel drops the lock
    after = second(tmp_path, tmp_path / "data", "after").start()
    try:
        assert httpx.get(f"{after.url}/readyz", timeout=10).status_code == 200
    finally:
        after.stop(signal.SIGTERM)


def test_migrate_and_reindex_run_beside_a_server(
    tmp_path: Path, server_factory: Callable[..., ServerProcess]
) -> None:
    """Decision: `migrate` (idempotent, serialized by SQLite's write lock) and `reindex` (in
    embedded mode a check of the database only) do not take the serving lock."""
    server = server_factory()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCOREBOARD_")}
    env["SCOREBOARD_DATA_DIR"] = str(tmp_path / "data")
    exe = str(Path(sys.executable).with_name("scoreboard"))
    for command in ("migrate", "reindex"):
        done = subprocess.run([exe, command], env=env, capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr.decode()
    assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
