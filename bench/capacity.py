"""The capacity bench (issue 14 item 4): the figures docs/CAPACITY.md's plan is built from.

    .venv/bin/python bench/capacity.py [--quick] [--only fanout,batch,redis,http]
        [--clients 500,1000,2000,5000] [--json FILE] [--from-json FILE]

Measures CPU time, counts and bytes (steady on a shared machine) rather than wall-clock rates,
and says which figures are wall-clock. It starts what it needs: embedded `scoreboard serve`
processes and the live client (`bench/live_client.py`) for the fan-out, scratch PostgreSQL
databases it creates and drops (the shared server; pg_walinspect is created in them), and a
throwaway redis-server on a free port for every Redis figure (the shared one is not used).
Sections (see bench/perfkit/cap_*.py): 1. fan-out cost per client, 2. batch size vs commit
latency, 3. Redis cost per event, 4. the write path over HTTP. Then the plan derived from
them (`perfkit/cap_plan.py`). `--json` saves the figures; `--from-json` prints the tables and
the plan again from a saved file, measuring nothing. Exit status 1 when a section failed.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `perfkit` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import argparse
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

from perfkit import cap_batch, cap_fanout, cap_http, cap_redis
from perfkit.cap_plan import Assumptions
from perfkit.cap_report import (
    Measured,
    batch_section,
    fanout_section,
    http_section,
    inputs,
    plan_section,
    redis_section,
)
from perfkit.env import BenchEnv
from perfkit.procs import raise_nofile

CACHE = Path(__file__).resolve().parent / ".cache"
SECTIONS = ("fanout", "batch", "redis", "http")
SIZES = (1, 10, 50, 100, 500)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short smoke run (~2 minutes)")
    parser.add_argument("--only", default=",".join(SECTIONS), help="sections, comma-separated")
    parser.add_argument("--clients", help="fan-out client counts, e.g. 500,1000,2000,5000")
    parser.add_argument("--json", type=Path, help="save the measured figures here")
    parser.add_argument("--from-json", type=Path, help="print tables and plan from a saved run")
    parser.add_argument(
        "--pg",
        default=os.environ.get(
            "SCOREBOARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="PostgreSQL admin URL (scratch databases are created and dropped there)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    return parser.parse_args(argv)


def guarded(m: Measured, name: str, section: Callable[[], Any]) -> Any:
    """A section's result, or None with its failure recorded: the others still run."""
    started = time.monotonic()
    print(f"[capacity] {name} ...", file=sys.stderr, flush=True)
    try:
        return section()
    except Exception as exc:  # reported in the output instead of a figure
        m.failures[name] = f"{type(exc).__name__}: {exc}"
        return None
    finally:
        print(f"[capacity] {name}: {time.monotonic() - started:.0f} s", file=sys.stderr)


def measure(args: argparse.Namespace, only: set[str], env: BenchEnv) -> Measured:
    quick = args.quick
    clients: tuple[int, ...] = (200, 500) if quick else (500, 1000, 2000, 5000)
    if args.clients:
        clients = tuple(int(n) for n in args.clients.split(","))
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = os.getloadavg()[0]
    m = Measured(f"scoreboard capacity ({'quick' if quick else 'full'}, {os.cpu_count()} CPUs, "
                 f"load average {load:.1f} at the start, {when})")  # fmt: skip
    if "fanout" in only:
        m.fanout = guarded(m, "fanout", lambda: cap_fanout.run(env, clients, 10 if quick else 20))
    if "batch" in only:
        events, least = (500, 10) if quick else (3000, 30)
        m.batch = guarded(m, "batch", lambda: cap_batch.run(env, SIZES, 2000, events, least))
    if "redis" in only:
        members, events, least = (20_000, 1000, 10) if quick else (100_000, 5000, 20)
        workdir = env.workdir / "capredis"
        m.redis = guarded(m, "redis", lambda: cap_redis.run(workdir, SIZES, members, events, least))
    if "http" in only:
        m.http = guarded(m, "http", lambda: cap_http.run(env, 3 if quick else 5))
    return m


def render(m: Measured) -> str:
    parts = [m.title]
    if m.fanout is not None:
        parts.append(fanout_section(*m.fanout))
    if m.batch is not None:
        parts.append(batch_section(m.batch))
    if m.redis is not None:
        parts.append(redis_section(*m.redis))
    if m.http is not None:
        parts.append(http_section(m.http, cap_http.check(m.http)))
    plan_inputs = inputs(m)
    if plan_inputs is not None:
        parts.append(plan_section(plan_inputs, Assumptions()))
    parts += [f"FAILS: {name}: {error}" for name, error in m.failures.items()]
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        m = Measured.from_json(json.loads(args.from_json.read_text()))
    else:
        only = {s.strip() for s in args.only.split(",") if s.strip()}
        if unknown := only - set(SECTIONS):
            raise SystemExit(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")
        raise_nofile()
        workdir = Path(tempfile.mkdtemp(prefix="scoreboard-capacity-"))
        env = BenchEnv(workdir, CACHE, args.pg, redis_url="")  # no shared Redis is used
        try:
            m = measure(args, only, env)
        finally:
            if not args.keep:
                shutil.rmtree(workdir, ignore_errors=True)
        if args.json:
            args.json.write_text(json.dumps(m.to_json(), indent=1) + "\n")
    print(render(m))
    failed = bool(m.failures) or (m.http is not None and cap_http.check(m.http).startswith("F"))
    if m.fanout is not None:  # every client connected, got every round and converged
        runs = [m.fanout[0], *m.fanout[1]]
        failed |= any(r.missed or r.converged < r.clients for r in runs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
