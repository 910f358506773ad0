"""A redis-server of the test's own, to kill and restart without touching the shared one."""

from __future__ import annotations

import subprocess
import time


class PortTaken(Exception):
    """The server could not listen on its port (another process took it first)."""


class ThrowawayRedis:
    """A redis-server on `port`, without persistence: restarting it loses every key, as a Redis
    without persistence does when it restarts."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        # Generous: on a loaded machine (CI runs everything at once) a start takes seconds.
        deadline = time.monotonic() + 20
        while not self._answers():
            if self._process.poll() is not None:  # e.g. the port was taken meanwhile
                raise PortTaken(f"redis-server on port {self.port} exited at start")
            assert time.monotonic() < deadline, "throwaway redis-server did not start"
            time.sleep(0.02)

    def _answers(self) -> bool:
        ping = ["redis-cli", "-p", str(self.port), "ping"]
        return subprocess.run(ping, capture_output=True, check=False).stdout.strip() == b"PONG"

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None
