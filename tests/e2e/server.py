"""Start real `scoreboard serve` processes for end-to-end tests."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from tests.conftest import free_port

# Patience for a server's start: a few seconds alone, but the suite's workers start servers at
# the same time on a machine with fewer cores than workers (pyproject's addopts: -n auto).
START_SECONDS = 90.0


class ServerProcess:
    """One `scoreboard serve` on a free port, with its own environment and log file."""

    def __init__(
        self,
        workdir: Path,
        env: dict[str, str],
        port: int | None = None,
        open_files: int | None = None,
        log_level: str = "warning",
        args: tuple[str, ...] = (),
    ) -> None:
        self.workdir = workdir
        self.args = args  # more `serve` options, e.g. ("--workers", "2")
        self.open_files = open_files  # start with this soft limit on open files
        self.port = port or free_port()
        self.env = env
        self.log_level = log_level
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start the process without waiting for readiness (a backend may be down on purpose)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCOREBOARD_")}
        env["SCOREBOARD_DRAIN_SECONDS"] = "0"  # stopping a test server: no drain unless asked
        env.update(self.env)
        exe = Path(sys.executable).with_name("scoreboard")
        cmd = [str(exe), "serve", "--port", str(self.port), "--log-level", self.log_level]
        cmd += self.args
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=self._limit_open_files if self.open_files else None,
            )
        return self.proc

    def _limit_open_files(self) -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.open_files, hard))

    def start(self, timeout: float = START_SECONDS) -> ServerProcess:
        """Start the process and wait until `/readyz` answers 200 (an exit fails at once)."""
        self.spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server not ready in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)
