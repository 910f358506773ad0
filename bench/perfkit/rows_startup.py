"""Rows: start-up with a big board (1M users in the full run).

Embedded: a `scoreboard serve` on a SQLite file that already holds the board, timed from the
process's start until `/readyz` answers 200 with `rank_index: ok` (a start-up whose rebuild
failed serves from SQL and answers 200 with `rebuilding`: not counted as started). PostgreSQL
+ Redis: `scoreboard reindex`, timed as a process, then a `serve` start-up on the same database
(it rebuilds the index before serving too). Each figure also gives the process's CPU seconds
(the steadier figure on a shared machine). Checked: the board's `total` is the number of users.
Populated data is cached under `bench/.cache/` (by size and schema revision).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx

from .checks import Verdict
from .env import SCOREBOARD, BenchEnv
from .options import Options
from .populate import cached_sqlite, fill_postgres
from .procs import Procs, free_ports, wait_ready
from .table import Row

TIMEOUT = 300.0  # start-up and reindex bound: a row that takes longer FAILS


def schema_revision(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return str(conn.execute("SELECT version_num FROM alembic_version").fetchone()[0])
    finally:
        conn.close()


def timed_start(procs: Procs, service_env: dict[str, str], users: int) -> tuple[str, Verdict]:
    """Seconds (wall, CPU) from the process's start until /readyz 200 says the rank index is
    built, and the board's size check."""
    port = free_ports()
    cmd = [SCOREBOARD, "serve", "--port", str(port), "--log-level", "warning"]
    started = time.monotonic()
    proc = procs.start(f"serve-{port}", cmd, service_env)
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/readyz", proc, TIMEOUT)
    wait_index(f"{url}/readyz", proc, started + TIMEOUT)
    seconds, cpu = time.monotonic() - started, cpu_seconds(proc.pid)
    total = httpx.get(f"{url}/api/v1/leaderboard?limit=1", timeout=30).json()["total"]
    figure = f"{seconds:.1f} s (CPU {cpu:.1f} s)"
    return figure, Verdict(total == users, f"board total {total:,} of {users:,} users")


def wait_index(url: str, proc: subprocess.Popen[bytes], deadline: float) -> None:
    """Poll /readyz until its `rank_index` check is "ok" (the index is built)."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before its index was built")
        with contextlib.suppress(httpx.HTTPError, ValueError):
            if httpx.get(url, timeout=2).json()["checks"]["rank_index"] == "ok":
                return
        time.sleep(0.05)
    raise TimeoutError(f"rank index not built within {TIMEOUT:.0f} s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (`/proc/PID/stat`)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def embedded(env: BenchEnv, opts: Options) -> list[Row]:
    workdir = env.workdir / "startup-embedded"
    template_env = env.service_env(workdir / "template")
    env.migrate(template_env)
    template = workdir / "template" / "scoreboard.db"
    cache = env.cache / f"sqlite-{schema_revision(template)}"
    board = cached_sqlite(cache, template, opts.startup_users)
    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(board, data / "scoreboard.db")
    # The first start fills the boards that are new to this database from its event log
    # (once: `board_defs` records them); the second is every start after it.
    found = []
    for when in ("first start: boards filled from the log", "every later start"):
        with Procs(workdir) as procs:
            figure, verdict = timed_start(procs, env.service_env(data), opts.startup_users)
        found.append(
            Row(
                f"start-up with {opts.startup_users:,} users, embedded, {when} (process "
                "start → index built)",
                figure,
                checks=verdict.cell(),
            )
        )
    return found


def reindex(service_env: dict[str, str], workdir: Path, *args: str) -> str:
    """`scoreboard reindex`, timed (wall, CPU); raises with the command's own error line when
    it fails."""
    started, children = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        done = subprocess.run(
            [SCOREBOARD, "reindex", *args],
            env=service_env,
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        raise TimeoutError(f"reindex still running after {TIMEOUT:.0f} s") from None
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    (workdir / "reindex.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"after {seconds:.0f} s: {last_error(done.stderr)}")
    return f"{seconds:.1f} s (CPU {cpu:.1f} s)"


EXCEPTION_LINE = re.compile(r"^\s*((?:\w+\.)*\w*(?:Error|Exception|Unavailable|Timeout)\w*: .*)$")


def last_error(output: str) -> str:
    """The exception line (`TimeoutError: ...`) of a traceback, also of a rich one drawn in
    boxes; else the last line that is not box drawing."""
    lines = [line.strip(" │╭╰─╮╯") for line in output.splitlines()]
    matches = [m.group(1) for line in lines if (m := EXCEPTION_LINE.match(line))]
    if matches:
        return matches[-1]
    text = [line for line in lines if line.strip()]
    return text[-1] if text else "no output"


def scaled(env: BenchEnv, opts: Options) -> list[Row]:
    workdir = env.workdir / "startup-scaled"
    users = opts.startup_users
    rows = []
    with env.scratch_database("startup") as name, env.redis_prefix("startup") as prefix:
        service_env = env.service_env(workdir / "data", name, prefix)
        env.migrate(service_env)
        cache = env.cache / "postgres"
        asyncio.run(fill_postgres(env.pg_url(name), cache, users, scored=True))
        for args, what in (
            ((), "boards recomputed from the log, then indexed"),
            (("--index-only",), "the rank indexes from the boards' rows"),
        ):
            command = " ".join(["scoreboard reindex", *args])
            path = f"`{command}` with {users:,} users, Redis ({what})"
            try:
                rows.append(Row(path, reindex(service_env, workdir, *args)))
            except Exception as exc:  # the table says how it failed, the other rows still run
                rows.append(Row.failed(path, exc))
        path = f"start-up with {users:,} users, PostgreSQL + Redis (→ index built)"
        try:
            with Procs(workdir) as procs:
                figure, verdict = timed_start(procs, service_env, users)
            rows.append(Row(path, figure, checks=verdict.cell()))
        except Exception as exc:
            rows.append(Row.failed(path, exc))
    return rows


def rows(env: BenchEnv, opts: Options) -> list[Row]:
    """Each backend's rows on their own: one failing leaves the other's figures."""
    try:
        out = embedded(env, opts)
    except Exception as exc:
        out = [Row.failed(f"start-up with {opts.startup_users:,} users, embedded", exc)]
    try:
        return out + scaled(env, opts)
    except Exception as exc:
        return [*out, Row.failed(f"start-up with {opts.startup_users:,} users, PG + Redis", exc)]
