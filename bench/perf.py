"""The performance bench of issue 10: every hot path against a baseline, in one run.

    .venv/bin/python bench/perf.py [--quick] [--only ingest,read,live,startup]

Starts everything it needs itself (service processes, baselines, wrk, pgbench, the live
client) on free ports of 127.0.0.1, in scratch databases and Redis prefixes it removes again,
and prints one table: each path, the service's figure, the baseline's figure from the same
run, the ratio, and the correctness checks. A row whose measurement fails prints
`FAILS: <error>` instead of a figure. Exit status 1 if any check failed. See docs/BENCH.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `perfkit` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import argparse
import dataclasses
import os
import tempfile
import time
from collections.abc import Callable

from perfkit import rows_ingest, rows_live, rows_read, rows_startup
from perfkit.env import BenchEnv
from perfkit.options import SECTIONS, Options
from perfkit.procs import raise_nofile
from perfkit.table import Row, render

CACHE = Path(__file__).resolve().parent / ".cache"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--only", default=",".join(SECTIONS), help="sections, comma-separated")
    parser.add_argument("--live-clients", help="e.g. 1000,5000,10000")
    parser.add_argument("--startup-users", type=int, help="board size of the start-up rows")
    parser.add_argument(
        "--pg",
        default=os.environ.get(
            "SCOREBOARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="PostgreSQL admin URL (scratch databases are created and dropped there)",
    )
    parser.add_argument(
        "--redis", default=os.environ.get("SCOREBOARD_TEST_REDIS", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    return parser.parse_args(argv)


def options(args: argparse.Namespace) -> Options:
    opts = Options.quick() if args.quick else Options()
    changes: dict[str, object] = {}
    if args.live_clients:
        changes["live_clients"] = tuple(int(n) for n in args.live_clients.split(","))
    if args.startup_users:
        changes["startup_users"] = args.startup_users
    return dataclasses.replace(opts, **changes)  # type: ignore[arg-type]


def guarded(title: str, section: Callable[[], list[Row]]) -> list[Row]:
    """A section's rows, or one FAILS row: one broken measurement never stops the bench."""
    started = time.monotonic()
    print(f"[bench] {title} ...", file=sys.stderr, flush=True)
    try:
        rows = section()
    except Exception as exc:  # the table reports it instead of a figure
        rows = [Row.failed(title, exc)]
    print(f"[bench] {title}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return rows


def sections(env: BenchEnv, opts: Options, only: set[str]) -> list[Row]:
    rows: list[Row] = []
    if "ingest" in only:
        base = rows_ingest.baseline(env, opts, env.workdir / "pgbench")
        rows += guarded("ingest, embedded", lambda: rows_ingest.embedded(env, opts, base[0]))
        rows += guarded(
            "ingest, PostgreSQL + Redis", lambda: rows_ingest.scaled(env, opts, base[0])
        )
        rows.append(Row("pgbench baseline (one event per transaction)", "—", checks=base[1].cell()))
    if "read" in only:
        rows += guarded("reads", lambda: rows_read.rows(env, opts))
    if "live" in only:
        rows += guarded("live updates", lambda: rows_live.rows(env, opts))
    if "startup" in only:
        rows += guarded("start-up", lambda: rows_startup.rows(env, opts))
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    opts = options(args)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    if unknown := only - set(SECTIONS):
        raise SystemExit(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    raise_nofile()
    workdir = Path(tempfile.mkdtemp(prefix="scoreboard-bench-"))
    env = BenchEnv(workdir, CACHE, args.pg, args.redis)
    try:
        rows = sections(env, opts, only)
    finally:
        if not args.keep:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    mode = "quick" if args.quick else "full"
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(
        render(
            rows,
            f"scoreboard bench ({mode}, {os.cpu_count()} CPUs, {when})",
        )
    )
    failed = any(r.checks.startswith("FAILED") or r.service.startswith("FAILS") for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
