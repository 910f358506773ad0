"""Processes the bench starts: free ports, process groups, readiness, RSS, and always a kill.

Every server goes on 127.0.0.1, in its own session (so its whole group can be signalled), with
its open-file limit raised to the hard limit (10,000 WebSockets need 10,000 descriptors), its
output in a log file, and is killed when the `Procs` context ends, whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import httpx


def raise_nofile() -> None:
    """Soft RLIMIT_NOFILE up to the hard limit (also used as a `preexec_fn`)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_ports(count: int = 1, attempts: int = 50) -> int:
    """The first of `count` consecutive free TCP ports on 127.0.0.1."""
    for _ in range(attempts):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if base + count < 65535 and all(_is_free(base + n) for n in range(count)):
            return base
    raise RuntimeError(f"no {count} consecutive free ports")


def _is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def rss_kb(pid: int) -> int:
    """Resident set size of a process, from /proc/PID/status (VmRSS, in kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


class Procs:
    """The processes of one bench section; `with Procs(dir) as p:` kills them all at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Procs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def start(
        self, name: str, cmd: Sequence[str], env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start `cmd` in its own session, output to `<workdir>/<name>.log`."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("SCOREBOARD_")}
        full_env.update(env or {})
        with open(self.workdir / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                list(cmd),
                cwd=self.workdir,
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=raise_nofile,  # no threads run in the bench yet
            )
        self.started.append(proc)
        return proc

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop_all(self) -> None:
        """SIGTERM every group, then SIGKILL whatever is left after 10 s."""
        for proc in self.started:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            _signal_group(proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        self.started.clear()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float) -> float:
    """Poll `url` until it answers 200; the seconds it took. Raises if the process died."""
    started = time.monotonic()
    for _ in iter_until(started + timeout):
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before it was ready")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return time.monotonic() - started
        time.sleep(0.05)
    raise TimeoutError(f"{url} not ready within {timeout:.0f} s")


def iter_until(deadline: float) -> Iterator[None]:
    """A bounded polling loop: yields until the monotonic `deadline` has passed."""
    while time.monotonic() < deadline:
        yield
