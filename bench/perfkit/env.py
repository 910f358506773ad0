"""What every bench section shares: a work directory, scratch databases, Redis key prefixes,
the JWT secret, and starting `scoreboard serve` processes with the bench's settings.

Scratch PostgreSQL databases and Redis prefixes are unique per run and removed at the end of
the section that made them (`scratch_database`, `redis_prefix`), also when it failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .procs import Procs, free_ports, wait_ready

SCOREBOARD = str(Path(sys.executable).with_name("scoreboard"))
# The bench measures throughput, not the limiter: the score limit is raised out of the way.
BENCH_SETTINGS = {
    "SCOREBOARD_RATE_LIMIT_SCORE": "100000000/minute",
    "SCOREBOARD_RATE_LIMIT_LOGIN": "100000000/minute",
    "SCOREBOARD_RATE_LIMIT_LOGIN_ADDRESS": "100000000/minute",
    # Every bench client comes from 127.0.0.1: the per-address caps would refuse them.
    "SCOREBOARD_MAX_CONNECTIONS_PER_ADDRESS": "0",
    "SCOREBOARD_MAX_WEBSOCKETS_PER_ADDRESS": "0",
    # Processes are stopped between rows: no readiness drain before they stop.
    "SCOREBOARD_DRAIN_SECONDS": "0",
}


@dataclass
class BenchEnv:
    workdir: Path
    cache: Path
    pg_admin: str  # e.g. postgresql://postgres@127.0.0.1:5432/postgres
    redis_url: str
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(48))

    def pg_url(self, database: str) -> str:
        return f"{self.pg_admin.rsplit('/', 1)[0]}/{database}"

    def service_env(
        self, data_dir: Path, database: str | None = None, prefix: str | None = None
    ) -> dict[str, str]:
        """Settings of one service: embedded under `data_dir`, or PostgreSQL + Redis."""
        env = {**BENCH_SETTINGS, "SCOREBOARD_DATA_DIR": str(data_dir)}
        env["SCOREBOARD_JWT_SECRET"] = self.secret
        if database:
            env["SCOREBOARD_DATABASE_URL"] = self.pg_url(database)
        if prefix:
            env["SCOREBOARD_REDIS_URL"] = self.redis_url
            env["SCOREBOARD_REDIS_PREFIX"] = prefix
        return env

    def migrate(self, env: dict[str, str]) -> None:
        """`scoreboard migrate` with these settings (creates the schema), in the environment
        the servers get (`Procs.start`: this one's, e.g. PYTHONPATH naming the checkout whose
        code is measured, without its SCOREBOARD_ settings), so the schema is that code's."""
        Path(env["SCOREBOARD_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("SCOREBOARD_")}
        done = subprocess.run(
            [SCOREBOARD, "migrate"],
            env={**full_env, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"migrate failed: {done.stderr.strip()[-300:]}")

    @contextlib.contextmanager
    def scratch_database(self, tag: str) -> Iterator[str]:
        """A fresh PostgreSQL database, dropped (connections forced out) afterwards."""
        name = f"scoreboard_bench_{tag}_{uuid.uuid4().hex[:8]}"
        pg_query(self.pg_admin, f'CREATE DATABASE "{name}"')
        try:
            yield name
        finally:
            pg_query(self.pg_admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @contextlib.contextmanager
    def redis_prefix(self, tag: str) -> Iterator[str]:
        """A key prefix of its own on the shared Redis; its keys are deleted afterwards."""

        prefix = f"bench:{tag}:{uuid.uuid4().hex[:8]}:"
        try:
            yield prefix
        finally:
            delete_prefix(self.redis_url, prefix)


def delete_prefix(redis_url: str, prefix: str) -> None:
    """Remove a prefix's keys: UNLINK (freed in the background, so a 1M-member index does not
    block the shared Redis). A failure is reported, not raised: the rows are measured."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=60)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 1000):
            client.unlink(*keys[start : start + 1000])
    except redis.RedisError as exc:
        print(f"[bench] could not delete Redis keys {prefix}*: {exc!r}", file=sys.stderr)
    finally:
        client.close()


def supports_workers() -> bool:
    """Whether `scoreboard serve` has a `--workers` option (the issue asks for one)."""
    done = subprocess.run(
        [SCOREBOARD, "serve", "--help"], capture_output=True, text=True, timeout=60
    )
    return "--workers" in done.stdout


def start_services(
    procs: Procs, env: dict[str, str], count: int = 1, timeout: float = 120
) -> list[str]:
    """`count` service processes (on consecutive ports, or one `serve --workers count` when
    that option exists); their base URLs once every one answers /readyz."""
    base = free_ports(count)
    ports = list(range(base, base + count))
    if count > 1 and supports_workers():
        cmd = [SCOREBOARD, "serve", "--port", str(base), "--workers", str(count)]
        name = f"serve-{base}"
        proc = procs.start(name, [*cmd, "--log-level", "warning"], env)
        wait_ready(f"http://127.0.0.1:{base}/readyz", proc, timeout)
        # /readyz answers once the first worker listens; the load must meet all of them.
        wait_logged(procs, name, proc, "workers serving", timeout)
        return [f"http://127.0.0.1:{base}"]
    started = []
    for port in ports:
        cmd = [SCOREBOARD, "serve", "--port", str(port), "--log-level", "warning"]
        started.append((port, procs.start(f"serve-{port}", cmd, env)))
    for port, proc in started:
        wait_ready(f"http://127.0.0.1:{port}/readyz", proc, timeout)
    return [f"http://127.0.0.1:{port}" for port in ports]


def wait_logged(
    procs: Procs, name: str, proc: subprocess.Popen[bytes], text: str, timeout: float
) -> None:
    """Wait until `text` is in the log of the process `name`; raises if it exits first."""
    deadline = time.monotonic() + timeout
    while text not in procs.log(name):
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode} before logging {text!r}")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{name} did not log {text!r} within {timeout:.0f} s")
        time.sleep(0.1)


def pg_query(dsn: str, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """One statement on PostgreSQL (asyncpg, in a short event loop of its own); its rows."""

    async def run() -> list[tuple[Any, ...]]:
        import asyncpg

        conn = await asyncpg.connect(dsn)
        try:
            if args or sql.lstrip().upper().startswith("SELECT"):
                return [tuple(row) for row in await conn.fetch(sql, *args)]
            await conn.execute(sql)
            return []
        finally:
            await conn.close()

    return asyncio.run(run())
