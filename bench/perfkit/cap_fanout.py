"""Capacity, part 1: what one live client costs the service, per frame and in memory.

For each N (and N = 1 as the reference), a fresh embedded service with the 20-user board of
the live rows (`rows_live.board_setup`) and the live client program (`bench/live_client.py`,
a process of its own) holding N idle WebSocket clients on `/ws/leaderboard?limit=10`; K rounds
of a score event by a top-10 user, 0.25 s apart (so each is a leading-edge pass of the hub,
see `SCOREBOARD_WS_TICK_MS`). Read around the rounds: the service process's CPU seconds
(/proc/PID/stat), the board frames the clients received and their payload bytes (counted by
the client). The CPU per (client x frame) is the growth over the N = 1 run, divided by the
growth in frames; a least-squares slope over every N says the same from all runs at once.
Memory per connection: the service's VmRSS growth while the N clients connected, over N.
Keepalive pings are moved out of the way (`SCOREBOARD_WS_PING_SECONDS=3600`): their cost is
one frame per client per 25 s by default, which the plan adds back.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .env import BenchEnv, start_services
from .meters import proc_cpu
from .procs import Procs, raise_nofile, rss_kb
from .rows_live import BENCH, board_setup

GAP_SECONDS = 0.25
WS_HEADER_BYTES = 4  # an unmasked server text frame of 126..65535 bytes: 2 + 2 length bytes


@dataclass(frozen=True, slots=True)
class FanoutRun:
    clients: int
    connected: int
    rounds: int
    cpu: float  # service CPU seconds over the rounds
    frames: int  # board frames the clients received over the rounds
    frame_bytes: int  # their payload bytes
    kb_per_connection: float
    missed: int
    converged: int
    p99: float  # wall: POST -> frame, seconds (on a loaded machine: a wall figure only)


@dataclass(frozen=True, slots=True)
class FanoutCost:
    cpu_per_client_frame: float  # seconds, marginal over the one-client run
    slope: float  # seconds per frame, least squares over every run
    bytes_per_frame: float  # payload + WebSocket header


def one_run(env: BenchEnv, workdir: Path, clients: int, rounds: int) -> FanoutRun:
    tag = f"fan{clients}"
    service_env = board_setup(env, workdir, tag)
    service_env["SCOREBOARD_WS_PING_SECONDS"] = "3600"
    with Procs(workdir / tag) as procs:
        (url,) = start_services(procs, service_env)
        pid = procs.started[0].pid
        cmd = [sys.executable, str(BENCH / "live_client.py"), "--ws"]
        cmd += [url.replace("http://", "ws://") + "/ws/leaderboard", "--http", url]
        cmd += ["--clients", str(clients), "--rounds", str(rounds), "--gap", str(GAP_SECONDS)]
        cmd += ["--tokens", str(workdir / "tokens.txt")]
        cmd += ["--poster-tokens", str(workdir / "posters.txt")]
        return drive(cmd, pid, clients, rounds)


def drive(cmd: list[str], pid: int, clients: int, rounds: int) -> FanoutRun:
    """Run the live client; the service's CPU from "go" to the result line (not the clients'
    disconnects after it) and its memory growth while they connected."""
    rss_before = rss_kb(pid)
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, preexec_fn=raise_nofile
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        hello = json.loads(proc.stdout.readline() or '{"clients": 0}')
        time.sleep(2.0)  # idle: only the connections' own memory remains
        rss_after = rss_kb(pid)
        cpu_before = proc_cpu(pid)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        cpu = proc_cpu(pid) - cpu_before
        result: dict[str, Any] = json.loads(line or "{}")
        proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    connected = int(hello.get("clients", 0))
    if "board_frames" not in result:
        raise RuntimeError(f"the live client gave no result ({connected} connected)")
    return FanoutRun(
        clients=clients,
        connected=connected,
        rounds=rounds,
        cpu=cpu,
        frames=int(result["board_frames"]),
        frame_bytes=int(result["board_frame_bytes"]),
        kb_per_connection=(rss_after - rss_before) / connected if connected else float("nan"),
        missed=int(result.get("missed", 0)),
        converged=int(result.get("converged", 0)),
        p99=float(result.get("p99", float("nan"))),
    )


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of y over x (NaN with fewer than two distinct x)."""
    if len({x for x, _ in points}) < 2:
        return float("nan")
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    num = sum((x - mx) * (y - my) for x, y in points)
    return num / sum((x - mx) ** 2 for x, _ in points)


def cost(reference: FanoutRun, runs: Sequence[FanoutRun]) -> FanoutCost:
    """Per (client x frame): the biggest run's growth over the one-client reference, and
    the least-squares slope over every run (the reference included)."""
    big = max(runs, key=lambda r: r.frames)
    extra = big.frames - reference.frames
    marginal = (big.cpu - reference.cpu) / extra if extra > 0 else float("nan")
    frames = sum(r.frames for r in runs)
    size = sum(r.frame_bytes for r in runs) / frames if frames else float("nan")
    return FanoutCost(
        marginal, slope([(r.frames, r.cpu) for r in (reference, *runs)]), size + WS_HEADER_BYTES
    )


def run(
    env: BenchEnv, clients: tuple[int, ...], rounds: int
) -> tuple[FanoutRun, list[FanoutRun], FanoutCost]:
    workdir = env.workdir / "capfanout"
    reference = one_run(env, workdir, 1, rounds)
    runs = []
    for n in clients:
        print(f"[capacity] fan-out, {n:,} clients ...", file=sys.stderr, flush=True)
        runs.append(one_run(env, workdir, n, rounds))
    return reference, runs, cost(reference, runs)
