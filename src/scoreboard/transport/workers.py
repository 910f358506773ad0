"""`scoreboard serve --workers N`: one parent supervises N worker processes, each a whole server
(its own event loop, app, backends and guarded protocols) listening on the same port.

Why SO_REUSEPORT, one listening socket per worker (not one socket shared by all): measured on
this machine (docs/SCALING.md), a shared socket hands a burst of new connections to whichever
worker wakes first (asyncio accepts up to the backlog per wake-up): 128 keep-alive connections
split 115 / 13, and stay so for their life. With SO_REUSEPORT the kernel hashes each
connection to one listener: 61 / 67. Each worker binds its socket before it starts and listens
only once its lifespan has started, so it is sent connections only when it can serve them; a
dead worker's listener closes with it, and new connections go to the others at once.

The parent holds the port too: a socket bound with SO_REUSEPORT and never listening (it is sent
no connection), taken before any worker starts, so a port held by another program fails once
and clearly, and stays claimed while every worker restarts.

Workers are started with the `spawn` method (a fresh interpreter: no event loop, thread or
connection pool is inherited from the parent). A worker tells the parent it is serving through
a pipe, once uvicorn has started.

Supervision: a worker that exits while the parent is serving is replaced after a backoff
(0.5 s doubling to 30 s, back to 0.5 s after a worker has served a minute), logged each time.
A worker that fails before the first start of all of them ends the whole command with
uvicorn's start-up-failure status (3), as a single `serve` does: a bad setting would only fail
again. SIGTERM or SIGINT to the parent sends SIGTERM to every worker, each drains as one
`serve` does, and the parent exits 0. A worker whose parent dies gets SIGTERM from the kernel
(PR_SET_PDEATHSIG), so no worker outlives the command.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType

from uvicorn.config import STARTUP_FAILURE

log = logging.getLogger(__name__)

# A worker's body, called in the new process with the readiness pipe (picklable: a
# module-level function or a functools.partial of one).
WorkerTarget = Callable[[Connection], None]

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
# A worker that served this long before dying is restarted after the first backoff again.
HEALTHY_SECONDS = 60.0
# SIGTERM to SIGKILL: uvicorn's graceful shutdown (5 s) plus the lifespan's close.
STOP_SECONDS = 30.0
_PR_SET_PDEATHSIG = 1


def resolve_count(value: str) -> int:
    """`--workers`: a positive number, or `auto` / `0` for one per CPU this process may use."""
    text = value.strip().lower()
    if text in {"auto", "0"}:
        if hasattr(os, "sched_getaffinity"):  # Linux: the CPUs this process may run on
            return len(os.sched_getaffinity(0)) or 1
        return os.cpu_count() or 1
    count = int(text)  # ValueError for anything else
    if count < 0:
        raise ValueError(f"--workers must be 0, auto or a positive number, not {value}")
    return count


def port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port with SO_REUSEPORT, not listening yet: what each worker
    hands uvicorn (which listens after start-up), and what the parent holds to claim the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


@dataclass
class _Slot:
    """One worker position: the current process, its readiness pipe and its restart backoff."""

    number: int
    process: BaseProcess | None = None
    ready: Connection | None = None
    started_at: float = 0.0
    serving: bool = False
    backoff: float = BACKOFF_FIRST
    restart_at: float | None = None


@dataclass
class Supervisor:
    """Start `count` workers, keep them running, stop them on SIGTERM / SIGINT."""

    count: int
    target: WorkerTarget
    on_serving: Callable[[list[int]], None] = lambda pids: None  # all up, first time: pids
    slots: list[_Slot] = field(default_factory=list)
    _stopping: bool = False

    def run(self) -> int:
        """Supervise until a signal; the exit status (0, or 3 if the first start failed)."""
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

        def on_signal(signum: int, frame: FrameType | None) -> None:
            self._stopping = True
            with contextlib.suppress(OSError):
                os.write(wake_w, b"x")

        for sig in previous:
            signal.signal(sig, on_signal)
        try:
            self.slots = [_Slot(number) for number in range(self.count)]
            for slot in self.slots:
                self._start(slot)
            status = self._supervise(wake_r)
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(wake_r)
            os.close(wake_w)
        return status

    def _supervise(self, wake: int) -> int:
        all_started = False
        while not self._stopping:
            now = time.monotonic()
            waits: list[Connection | int] = [wake]
            for slot in self.slots:
                if slot.ready is not None:
                    waits.append(slot.ready)
                if slot.process is not None:
                    waits.append(slot.process.sentinel)
            timeouts = [s.restart_at - now for s in self.slots if s.restart_at is not None]
            wait(waits, timeout=max(0.0, min(timeouts, default=1.0)))
            for slot in self.slots:
                self._check_ready(slot)
                if not self._check_exit(slot, all_started):
                    return STARTUP_FAILURE
                if slot.restart_at is not None and time.monotonic() >= slot.restart_at:
                    self._start(slot)
            if not all_started and all(slot.serving for slot in self.slots):
                all_started = True
                log.info("%d workers serving (pids %s)", self.count, self.pids())
                self.on_serving(self.pids())
        return 0

    def pids(self) -> list[int]:
        return [s.process.pid for s in self.slots if s.process and s.process.pid is not None]

    def _start(self, slot: _Slot) -> None:
        context = multiprocessing.get_context("spawn")
        reader, writer = context.Pipe(duplex=False)
        process = context.Process(
            target=self.target,
            args=(writer,),
            name=f"scoreboard-worker-{slot.number}",
        )
        process.start()
        writer.close()  # the worker holds the other end; EOF here means it is gone
        slot.process, slot.ready = process, reader
        slot.started_at, slot.serving, slot.restart_at = time.monotonic(), False, None
        log.info("worker %d started (pid %s)", slot.number, process.pid)

    @staticmethod
    def _check_ready(slot: _Slot) -> None:
        if slot.ready is None or not slot.ready.poll():
            return
        with contextlib.suppress(EOFError, OSError):
            slot.ready.recv_bytes()
            slot.serving = True
        slot.ready.close()
        slot.ready = None

    def _check_exit(self, slot: _Slot, all_started: bool) -> bool:
        """Handle a worker that exited; False when the command must end (first start failed)."""
        process = slot.process
        if process is None or process.is_alive() or self._stopping:
            return True
        process.join()
        code = process.exitcode
        slot.process = None
        if slot.ready is not None:
            slot.ready.close()
            slot.ready = None
        if not all_started and not slot.serving:
            log.error(
                "worker %d (pid %s) failed to start (exit %s)", slot.number, process.pid, code
            )
            return False
        if time.monotonic() - slot.started_at >= HEALTHY_SECONDS:
            slot.backoff = BACKOFF_FIRST
        log.warning(
            "worker %d (pid %s) exited with status %s; restarting in %.1f s",
            slot.number,
            process.pid,
            code,
            slot.backoff,
        )
        slot.restart_at = time.monotonic() + slot.backoff
        slot.backoff = min(slot.backoff * 2, BACKOFF_MAX)
        return True

    def _stop_all(self) -> None:
        """SIGTERM to every worker, wait for each to drain, SIGKILL what is left."""
        self._stopping = True
        running = [s.process for s in self.slots if s.process is not None and s.process.is_alive()]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        deadline = time.monotonic() + STOP_SECONDS
        for process in running:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.error("worker pid %s did not stop in time; killing it", process.pid)
                process.kill()
                process.join(5)
        for slot in self.slots:
            if slot.ready is not None:
                slot.ready.close()


def detach_from_parent() -> None:
    """In a new worker: a session of its own, and SIGTERM from the kernel when the parent dies.

    The session: a terminal's Ctrl-C (SIGINT to the foreground group) reaches the parent only,
    which stops each worker with one SIGTERM (a SIGINT after the SIGTERM would make uvicorn skip
    the drain). It also gives each worker its own share of the CPU where the kernel groups
    scheduling by session (`sched_autogroup_enabled`, on here): N workers of one session share
    ONE session's share of a busy machine, which is what separate `serve` processes never did.
    PR_SET_PDEATHSIG (Linux; elsewhere a no-op): a SIGKILLed parent leaves no orphan."""
    parent = os.getppid()
    with contextlib.suppress(OSError):
        os.setsid()
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent or parent == 1:
        os._exit(0)
