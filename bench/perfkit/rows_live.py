"""Rows: live updates, the service's `/ws/leaderboard` vs a plain `websockets.broadcast`.

For each N, the same client program (`bench/live_client.py`, a process of its own) connects
N clients to a fresh embedded service whose board has 20 users, and measures R rounds of
POST -> frame; then the same against `bench/baselines/ws_broadcast.py`. The server's memory
per idle connection is its RSS growth while the N clients connect, over N. A lone event to a
single idle client gives the delay beyond the POST's own HTTP round trip. Checked: every
client got every round's frame, and its last board equals `GET /api/v1/leaderboard`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from .checks import Verdict, check_converged
from .env import BenchEnv, start_services
from .options import Options
from .populate import fill_sqlite, write_tokens
from .procs import Procs, free_ports, raise_nofile, rss_kb, wait_ready
from .table import Row, millis, signed

BENCH = Path(__file__).resolve().parent.parent
BOARD_USERS = 20  # posters are the top 10, so every round changes the visible top


@dataclass(frozen=True, slots=True)
class Target:
    """A server the live client measures: its URLs and its process (for RSS)."""

    ws: str
    http: str
    pid: int
    trigger: str  # "service" | "baseline"


def run_client(
    target: Target, workdir: Path, clients: int, rounds: int, gap: float = 0.25
) -> dict[str, Any]:
    """The live client against `target`; its result plus the server's memory per connection."""
    cmd = [sys.executable, str(BENCH / "live_client.py"), "--ws", target.ws, "--http", target.http]
    cmd += ["--clients", str(clients), "--rounds", str(rounds), "--trigger", target.trigger]
    cmd += ["--gap", str(gap), "--tokens", str(workdir / "tokens.txt")]
    cmd += ["--poster-tokens", str(workdir / "posters.txt")]
    before = rss_kb(target.pid)
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, preexec_fn=raise_nofile
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        hello = json.loads(proc.stdout.readline() or '{"clients": 0}')
        time.sleep(2.0)  # idle: only the connections' own memory remains
        after = rss_kb(target.pid)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        out, _ = proc.communicate(timeout=rounds * 25 + 60)
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    connected = int(hello.get("clients", 0))
    result["kb_per_connection"] = (after - before) / connected if connected else float("nan")
    return result


def board_setup(env: BenchEnv, workdir: Path, tag: str) -> dict[str, str]:
    """A fresh embedded service's settings, with the 20-user board and the tokens files."""
    data = workdir / f"data-{tag}"
    service_env = env.service_env(data)
    env.migrate(service_env)
    fill_sqlite(data / "scoreboard.db", BOARD_USERS, scored=True, top=BOARD_USERS)
    write_tokens(workdir / "tokens.txt", env.secret, range(BOARD_USERS))
    write_tokens(workdir / "posters.txt", env.secret, range(10))
    return service_env


def measure_service(
    env: BenchEnv, workdir: Path, tag: str, clients: int, rounds: int, gap: float
) -> tuple[dict[str, Any], Path]:
    """One fresh service, the client against it; also saves its top-10 for the baseline."""
    service_env = board_setup(env, workdir, tag)
    body = workdir / "top10.json"
    with Procs(workdir / tag) as procs:
        (url,) = start_services(procs, service_env)
        body.write_bytes(httpx.get(f"{url}/api/v1/leaderboard?limit=10", timeout=10).content)
        ws = url.replace("http://", "ws://") + "/ws/leaderboard"
        target = Target(ws, url, procs.started[0].pid, "service")
        return run_client(target, workdir, clients, rounds, gap), body


def measure_baseline(
    workdir: Path, tag: str, body: Path, clients: int, rounds: int, gap: float
) -> dict[str, Any]:
    port = free_ports()
    cmd = [sys.executable, str(BENCH / "baselines" / "ws_broadcast.py"), "--port", str(port)]
    with Procs(workdir / f"{tag}-baseline") as procs:
        proc = procs.start("ws-broadcast", [*cmd, "--body", str(body)])
        url = f"http://127.0.0.1:{port}"
        wait_ready(f"{url}/readyz", proc, 60)
        target = Target(f"ws://127.0.0.1:{port}/", url, proc.pid, "baseline")
        return run_client(target, workdir, clients, rounds, gap)


def live_verdict(service: dict[str, Any]) -> Verdict:
    converged, total = int(service.get("converged", 0)), int(service.get("clients", 0))
    boards = [True] * converged + [False] * (total - converged)
    verdict = check_converged(boards, True, missed=int(service.get("missed", 0)))
    if service.get("connected", 0) < total:
        verdict = Verdict(False, f"only {service.get('connected')} of {total} connected")
    if retries := int(service.get("retries", 0)):  # refused handshakes, connected on a retry
        return Verdict(verdict.ok, f"{verdict.text}; {retries} handshakes refused and retried")
    return verdict


def clients_rows(env: BenchEnv, opts: Options, clients: int) -> list[Row]:
    workdir = env.workdir / "live"
    tag = f"n{clients}"
    service, body = measure_service(env, workdir, tag, clients, opts.live_rounds, 0.25)
    base = measure_baseline(workdir, tag, body, clients, opts.live_rounds, 0.25)
    figure = f"{millis(service['p99'])} (p50 {millis(service['p50'])}, worst round "
    figure += f"{millis(service['worst_round_p99'])})"
    base_cell = f"websockets.broadcast: {millis(base['p99'])} (worst round "
    base_cell += f"{millis(base['worst_round_p99'])})"
    memory = f"{service['kb_per_connection']:.1f} KB"
    return [
        Row(
            f"live update, {clients:,} clients, p99 POST→frame",
            figure,
            base_cell,
            service["p99"] / base["p99"] if base.get("p99") else None,
            live_verdict(service).cell() + f"; baseline missed {base.get('missed', '?')}",
        ),
        Row(
            f"memory per idle WebSocket ({clients:,} clients)",
            memory,
            f"websockets: {base['kb_per_connection']:.1f} KB",
            service["kb_per_connection"] / base["kb_per_connection"]
            if base["kb_per_connection"] > 0
            else None,
        ),
    ]


def lone_row(env: BenchEnv, opts: Options) -> Row:
    """One idle client: how much later than the POST's answer the frame arrives."""
    workdir = env.workdir / "live"
    service, body = measure_service(env, workdir, "lone", 1, opts.lone_rounds, 0.3)
    base = measure_baseline(workdir, "lone", body, 1, opts.lone_rounds, 0.3)
    return Row(
        "lone event, idle client: frame after the HTTP answer (median)",
        f"{signed(service['extra_median'])} (POST round trip {millis(service['http_rtt_median'])})",
        f"websockets: {signed(base['extra_median'])}",
        None,
        live_verdict(service).cell(),
    )


def rows(env: BenchEnv, opts: Options) -> list[Row]:
    out = [lone_row(env, opts)]
    for clients in opts.live_clients:
        out += clients_rows(env, opts, clients)
    return out
