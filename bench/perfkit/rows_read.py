"""Rows: leaderboard reads on the embedded default vs a raw ASGI app on uvicorn.

The board holds `read_users` scored users (10,000 in the full run). The raw ASGI baseline
answers with the very bytes the service sent for the top 10; FastAPI returning those bytes
and FastAPI returning them as a dict are printed as reference rows (the cost of the
framework alone). Every run is checked: all answers 2xx.
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

from .checks import check_statuses
from .env import BenchEnv, start_services
from .loads import Load, Request, drive
from .options import Options
from .populate import fill_sqlite, write_tokens
from .procs import Procs, free_ports, wait_ready
from .table import Row, rate

BASELINES = Path(__file__).resolve().parent.parent / "baselines"
TOP10 = "/api/v1/leaderboard?limit=10"


def rows(env: BenchEnv, opts: Options) -> list[Row]:
    workdir = env.workdir / "read"
    data = workdir / "data"
    service_env = env.service_env(data)
    env.migrate(service_env)
    fill_sqlite(data / "scoreboard.db", opts.read_users, scored=True)
    tokens = workdir / "tokens.txt"
    write_tokens(tokens, env.secret, range(min(1000, opts.read_users)))
    offset = 5000 if opts.read_users >= 5010 else opts.read_users // 2
    body = workdir / "top10.json"
    with Procs(workdir) as procs:
        urls = start_services(procs, service_env)
        body.write_bytes(httpx.get(urls[0] + TOP10, timeout=10).content)
        top = drive(urls, workdir, "top", Request("GET", TOP10), opts)
        page = drive(urls, workdir, "page", Request("GET", f"{TOP10}&offset={offset}"), opts)
        me = drive(
            urls, workdir, "me", Request("GET", "/api/v1/leaderboard/me", None, tokens), opts
        )
    base = {app: baseline(env, opts, body, app) for app in ("raw", "fastapi-bytes", "fastapi-dict")}
    raw = figure(base["raw"])
    raw_cell = f"raw ASGI: {rate(raw, 'req/s')}"
    return [
        read_row(f"`GET {TOP10}` ({opts.read_users} users)", top, raw, raw_cell),
        read_row(
            "  reference: FastAPI returning pre-encoded bytes", base["fastapi-bytes"], raw, raw_cell
        ),
        read_row("  reference: FastAPI returning a dict", base["fastapi-dict"], raw, raw_cell),
        read_row(f"offset {offset} page", page, raw, raw_cell),
        read_row("`GET /api/v1/leaderboard/me` (1,000 tokens)", me, raw, raw_cell),
    ]


def figure(load: Load) -> float:
    return load.best.ok_rate if load.best else 0.0


def read_row(path: str, load: Load, raw: float, raw_cell: str) -> Row:
    ratio = figure(load) / raw if raw else None
    checks = check_statuses(load.ok, load.bad, load.bad_codes).cell()
    return Row(path, rate(figure(load), "req/s"), raw_cell, ratio, checks)


def baseline(env: BenchEnv, opts: Options, body: Path, app: str) -> Load:
    """One baseline app on uvicorn, driven exactly like the service's top-10 read."""
    workdir = env.workdir / "read" / app
    port = free_ports()
    cmd = [sys.executable, str(BASELINES / "raw_asgi.py"), "--port", str(port)]
    with Procs(workdir) as procs:
        proc = procs.start(app, [*cmd, "--body", str(body), "--app", app])
        url = f"http://127.0.0.1:{port}"
        wait_ready(url + TOP10, proc, 60)
        return drive([url], workdir, app, Request("GET", TOP10), opts)
