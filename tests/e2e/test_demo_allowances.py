"""`scoreboard demo` leaves the address's sign-up allowance to a browser beside it: a second
run logs its existing users in without registering them again."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from tests.e2e.server import ServerProcess


def demo(url: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("scoreboard")
    cmd = [str(exe), "demo", "--url", url, "--users", "2", "--rate", "5", "--duration", "0.5"]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "120"}
    )


@pytest.mark.e2e
def test_a_second_demo_run_registers_nobody(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory(env={"SCOREBOARD_RATE_LIMIT_REGISTER": "3/hour"})
    for _ in range(2):
        done = demo(server.url)
        assert done.returncode == 0, done.stdout + done.stderr
    # Two demo users registered once: the third sign-up of this address is a browser's.
    r = httpx.post(
        f"{server.url}/api/v1/auth/register",
        json={"username": "browser-user", "password": "correct horse"},
    )
    assert r.status_code == 201, r.text
