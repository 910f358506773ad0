"""Score-write latency with and without a login storm, against a real `scoreboard serve`.

    .venv/bin/python bench/login_storm.py [--scaled] [--users 20] [--writes 30]
        [--storm 100] [--storm-seconds 60] [--source DIR]

Starts the server itself (embedded default: SQLite + in-process; `--scaled`: a fresh PostgreSQL
database and a Redis key prefix of its own), registers `--users` users with their own tokens
(score and login limits raised through the environment, so only the server's capacity is
measured), then runs the same bounded write workload twice: each user posts `--writes` score
events one after another (`POST /api/v1/scores/events`), all users at once. The first run is
quiet; during the second, a separate process runs `--storm` concurrent login loops (correct
password, no back-off: a storm, not a client) until the writes are done or `--storm-seconds`
pass. Prints p50/p99 of the writes for both runs, the ratio of the p99s, and what the storm's
logins got (200s, 503s, 429s). `--source DIR` serves another checkout's `src/` (e.g. the code
before a change) with this environment's packages. Only 127.0.0.1 is targeted.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from multiprocessing.synchronize import Event
from pathlib import Path

import httpx

PASSWORD = "storm-password"
HIGH = "1000000/minute"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def fresh_pg(admin_url: str) -> str:
    import asyncpg

    name = f"scoreboard_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return f"{admin_url.rsplit('/', 1)[0]}/{name}"


def server_env(args: argparse.Namespace, data: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCOREBOARD_")}
    env.update(
        SCOREBOARD_DATA_DIR=data,
        SCOREBOARD_RATE_LIMIT_SCORE=HIGH,
        SCOREBOARD_RATE_LIMIT_POINTS=HIGH,
        SCOREBOARD_RATE_LIMIT_LOGIN=HIGH,
        SCOREBOARD_RATE_LIMIT_LOGIN_ADDRESS=HIGH,
        SCOREBOARD_RATE_LIMIT_REGISTER=HIGH,
        SCOREBOARD_DRAIN_SECONDS="0",
    )
    if args.source:
        env["PYTHONPATH"] = str(Path(args.source).resolve() / "src")
    if args.scaled:
        env["SCOREBOARD_DATABASE_URL"] = asyncio.run(fresh_pg(args.pg))
        env["SCOREBOARD_REDIS_URL"] = args.redis
        env["SCOREBOARD_REDIS_PREFIX"] = f"bench-{uuid.uuid4().hex[:8]}:"
    return env


def start_server(args: argparse.Namespace, data: str, port: int) -> subprocess.Popen[bytes]:
    code = "from scoreboard.cli import main; main()"
    cmd = [sys.executable, "-c", code, "serve", "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=server_env(args, data), cwd=data)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit("the server exited at start-up")
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not become ready within 60 s")


async def register(http: httpx.AsyncClient, name: str) -> str:
    """Register `name` and log in: its token."""
    body = {"username": name, "password": PASSWORD}
    (await http.post("/api/v1/auth/register", json=body)).raise_for_status()
    r = await http.post("/api/v1/auth/login", json=body)
    r.raise_for_status()
    return str(r.json()["access_token"])


async def writes(base: str, tokens: list[str], per_user: int) -> tuple[list[float], int]:
    """Every user posts `per_user` events in sequence, all users at once: latencies (s) of the
    201s, and the number of other answers."""
    latencies: list[float] = []
    failed = 0

    async def one_user(http: httpx.AsyncClient, token: str) -> None:
        nonlocal failed
        headers = {"Authorization": f"Bearer {token}"}
        for _ in range(per_user):
            began = time.perf_counter()
            r = await http.post(
                "/api/v1/scores/events", json={"action_type": "TASK_COMPLETED"}, headers=headers
            )
            if r.status_code == 201:
                latencies.append(time.perf_counter() - began)
            else:
                failed += 1

    limits = httpx.Limits(max_connections=len(tokens))
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
        await asyncio.gather(*(one_user(http, t) for t in tokens))
    return latencies, failed


async def _storm(base: str, username: str, loops: int, seconds: float, stop: Event) -> None:
    counts: collections.Counter[int] = collections.Counter()
    deadline = time.monotonic() + seconds
    body = {"username": username, "password": PASSWORD}

    async def loop(http: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline and not stop.is_set():
            try:
                counts[(await http.post("/api/v1/auth/login", json=body)).status_code] += 1
            except httpx.HTTPError:
                counts[0] += 1

    limits = httpx.Limits(max_connections=loops)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as http:
        await asyncio.gather(*(loop(http) for _ in range(loops)))
    print("storm logins by status:", dict(sorted(counts.items())), flush=True)


def storm_worker(base: str, username: str, loops: int, seconds: float, stop: Event) -> None:
    asyncio.run(_storm(base, username, loops, seconds, stop))


def summary(name: str, latencies: list[float], failed: int) -> float:
    cuts = statistics.quantiles(latencies, n=100)
    p50, p99 = cuts[49] * 1000, cuts[98] * 1000
    print(f"{name:>6}: {len(latencies)} writes (+{failed} not 201)", end="  ")
    print(f"p50 {p50:.1f} ms  p99 {p99:.1f} ms", flush=True)
    return p99


async def prepare(base: str, users: int) -> tuple[list[str], str]:
    tag = uuid.uuid4().hex[:6]
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        tokens = [await register(http, f"w{tag}{n}") for n in range(users)]
        await register(http, f"storm{tag}")
    return tokens, f"storm{tag}"


def run(args: argparse.Namespace, base: str) -> None:
    tokens, storm_user = asyncio.run(prepare(base, args.users))
    asyncio.run(writes(base, tokens, 2))  # warm-up: connections, caches, the index
    quiet = summary("quiet", *asyncio.run(writes(base, tokens, args.writes)))
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    worker = ctx.Process(
        target=storm_worker, args=(base, storm_user, args.storm, args.storm_seconds, stop)
    )
    worker.start()
    time.sleep(2.0)  # let the storm reach its pace before measuring
    stormy = summary("storm", *asyncio.run(writes(base, tokens, args.writes)))
    stop.set()
    worker.join(args.storm_seconds + 30)
    print(f"p99 during a {args.storm}-connection login storm / quiet p99: {stormy / quiet:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scaled", action="store_true", help="PostgreSQL + Redis")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--writes", type=int, default=30, help="events per user per run")
    parser.add_argument("--storm", type=int, default=100, help="concurrent login loops")
    parser.add_argument("--storm-seconds", type=float, default=60.0)
    parser.add_argument("--source", help="serve this checkout's src/ instead")
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="login-storm-") as data:
        proc = start_server(args, data, port)
        try:
            run(args, f"http://127.0.0.1:{port}")
        finally:
            proc.terminate()
            proc.wait(15)


if __name__ == "__main__":
    main()
