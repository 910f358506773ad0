"""Capacity, part 4: the whole write path over HTTP, CPU per acknowledged event.

One `scoreboard serve` on PostgreSQL (a scratch database) + a throwaway redis-server (its CPU
and commands are this run's alone), 1,000 users with tokens of their own, the four default
boards; `wrk -t1 -c64` POSTs score events (fresh idempotency keys, tokens round-robin) for a
1 s warm-up and then `seconds`. Over the timed run: the service process's CPU seconds, the
database's backends' CPU (from /proc: a backend that exits during the run loses its share),
Redis's CPU and commands, the WAL of the scratch database (pg_walinspect), events per commit
(the service's `scoreboard_commit_batch_size` histogram), each over the events acknowledged.
The acknowledged rate itself is wall-clock (wrk's count / its duration).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass

import httpx

from .env import BenchEnv, pg_query, start_services
from .meters import (
    WAL_OF_DATABASE,
    BackendSampler,
    ThrowawayRedis,
    calls_between,
    proc_cpu,
    wal_held,
)
from .populate import fill_postgres, write_tokens
from .procs import Procs
from .wrk import WrkResult, render_lua, run_wrk

USERS = 1000
CONNECTIONS = 64
SETTLE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class HttpFigures:
    acked: int
    stored: int
    non_2xx: int
    seconds: float  # wrk's duration, wall
    service_cpu_per_event: float
    postgres_cpu_per_event: float
    redis_cpu_per_event: float
    redis_commands_per_event: float
    wal_per_event: float
    events_per_commit: float
    p99: float  # wall
    redis_commands: dict[str, float]  # per event, by command, most first
    backends_seen: int = 0  # PostgreSQL backends of the database during the run (pool churn)

    @property
    def rate(self) -> float:
        """Acknowledged events per wall second on this (shared) machine."""
        return self.acked / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_event(self) -> float:
        """Service + PostgreSQL + Redis CPU seconds per event."""
        return self.service_cpu_per_event + self.postgres_cpu_per_event + self.redis_cpu_per_event


def metric_sum(text: str, name: str) -> float:
    """The sum of a metric's samples (every label set) in Prometheus text format."""
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? ([0-9.eE+-]+)$", re.MULTILINE)
    return sum(float(value) for value in pattern.findall(text))


def batch_counts(url: str) -> tuple[float, float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return (
        metric_sum(text, "scoreboard_commit_batch_size_sum"),
        metric_sum(text, "scoreboard_commit_batch_size_count"),
    )


def count_events(dsn: str) -> int:
    return int(pg_query(dsn, "SELECT count(*) FROM score_events")[0][0])


def run(env: BenchEnv, seconds: float) -> HttpFigures:
    workdir = env.workdir / "caphttp"
    tokens = workdir / "tokens.txt"
    with (
        env.scratch_database("caphttp") as name,
        Procs(workdir) as procs,
        wal_held(env.pg_admin),  # the WAL of the run stays readable (pg_walinspect)
    ):
        redis = ThrowawayRedis(procs, workdir / "redis")
        service_env = env.service_env(workdir / "data", name, "cap:")
        service_env["SCOREBOARD_REDIS_URL"] = redis.url
        env.migrate(service_env)
        dsn = env.pg_url(name)
        asyncio.run(fill_postgres(dsn, env.cache, USERS, scored=False))
        pg_query(dsn, "CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        oid = pg_query(env.pg_admin, "SELECT oid FROM pg_database WHERE datname = $1", name)[0][0]
        write_tokens(tokens, env.secret, range(USERS))
        (url,) = start_services(procs, service_env)
        pid = procs.started[-1].pid
        script = workdir / "post.lua"

        def load(tag: str, length: float) -> WrkResult:
            body = '{"action_type": "TASK_COMPLETED"}'
            lua = render_lua("POST", "/api/v1/scores/events", body, tokens, key_prefix=tag)
            script.write_text(lua)
            return run_wrk(url, script, CONNECTIONS, length)

        load("warm", 1)
        time.sleep(SETTLE_SECONDS)  # the requests wrk cut off are committed before counting
        stored_before = count_events(dsn)
        service, pg, reading = proc_cpu(pid), BackendSampler(name), redis.reading()
        lsn = str(pg_query(dsn, "SELECT pg_current_wal_insert_lsn()::text")[0][0])
        batch_sum, batch_count = batch_counts(url)
        result = load("timed", seconds)
        time.sleep(SETTLE_SECONDS)
        service = proc_cpu(pid) - service
        pg_cpu, backends_seen = pg.stop()
        after = redis.reading()
        batch_sum2, batch_count2 = batch_counts(url)
        end = str(pg_query(dsn, "SELECT pg_current_wal_flush_lsn()::text")[0][0])
        wal = pg_query(dsn, WAL_OF_DATABASE, lsn, end, str(int(oid)))[0]
        stored = count_events(dsn) - stored_before
    done = max(1, stored)  # what the service committed in the window: acknowledged or cut off
    commits = batch_count2 - batch_count
    calls = calls_between(reading, after)
    return HttpFigures(
        acked=result.ok,
        stored=stored,
        non_2xx=result.bad + result.socket_errors,
        seconds=result.seconds,
        service_cpu_per_event=service / done,
        postgres_cpu_per_event=pg_cpu / done,
        redis_cpu_per_event=(after.cpu - reading.cpu) / done,
        redis_commands_per_event=sum(calls.values()) / done,
        redis_commands={k: v / done for k, v in sorted(calls.items(), key=lambda kv: -kv[1])},
        wal_per_event=int(wal[1]) / done,
        events_per_commit=(batch_sum2 - batch_sum) / commits if commits else float("nan"),
        p99=result.p99,
        backends_seen=backends_seen,
    )


def check(figures: HttpFigures) -> str:
    """Every acknowledged event stored; at most one per connection stored unacknowledged
    (wrk stops with a request in flight on each)."""
    ok = figures.acked <= figures.stored <= figures.acked + CONNECTIONS
    verdict = "ok" if ok and not figures.non_2xx else "FAILED"
    return f"{verdict}: acked {figures.acked}, stored {figures.stored}, {figures.non_2xx} errors"
