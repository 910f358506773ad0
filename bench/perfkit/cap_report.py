"""The capacity bench's measured figures: kept together (`Measured`, saved as JSON and read
back), turned into the plan's `Inputs`, and printed as Markdown tables (pure, no I/O)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .cap_batch import BatchFigures, BatchResult
from .cap_fanout import FanoutCost, FanoutRun
from .cap_http import HttpFigures
from .cap_plan import (
    Assumptions,
    Inputs,
    clients_per_process,
    clients_plan,
    combined_plan,
    events_plan,
    latency_bound_clients,
    max_event_rate_one_view,
    pg_connections,
)
from .cap_redis import RedisFigures, RedisMemory

PLANNED_BATCH = 100  # what group commit forms at >= 1k events/s (see docs/CAPACITY.md)
VIEWS = 4  # the default boards' current views, every event on each


@dataclass
class Measured:
    title: str = ""
    fanout: tuple[FanoutRun, list[FanoutRun], FanoutCost] | None = None
    batch: BatchResult | None = None
    redis: tuple[RedisMemory, list[RedisFigures]] | None = None
    http: HttpFigures | None = None
    failures: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "fanout": None if self.fanout is None else [
                dataclasses.asdict(self.fanout[0]),
                [dataclasses.asdict(r) for r in self.fanout[1]],
                dataclasses.asdict(self.fanout[2]),
            ],
            "batch": None if self.batch is None else dataclasses.asdict(self.batch),
            "redis": None if self.redis is None else [
                dataclasses.asdict(self.redis[0]), [dataclasses.asdict(r) for r in self.redis[1]]
            ],
            "http": None if self.http is None else dataclasses.asdict(self.http),
            "failures": self.failures,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Measured:
        out = cls(title=data.get("title", ""), failures=dict(data.get("failures", {})))
        if (f := data.get("fanout")) is not None:
            out.fanout = (FanoutRun(**f[0]), [FanoutRun(**r) for r in f[1]], FanoutCost(**f[2]))
        if (b := data.get("batch")) is not None:
            figures = [BatchFigures(**x) for x in b["figures"]]
            out.batch = BatchResult(figures, b["disk_per_event"], b["settings"])
        if (r := data.get("redis")) is not None:
            out.redis = (RedisMemory(**r[0]), [RedisFigures(**x) for x in r[1]])
        if (h := data.get("http")) is not None:
            out.http = HttpFigures(**h)
        return out


def at_size(items: Sequence[Any], size: int) -> Any:
    """The figures measured at the batch size closest to `size`."""
    return min(items, key=lambda x: (abs(math.log(x.size / size)), x.size))


def inputs(m: Measured) -> Inputs | None:
    """The plan's inputs, when every section was measured."""
    if m.fanout is None or m.batch is None or m.redis is None or m.http is None:
        return None
    _, runs, fan = m.fanout
    pg = at_size([b for b in m.batch.figures if b.backend == "postgresql"], PLANNED_BATCH)
    view = at_size(m.redis[1], PLANNED_BATCH)
    return Inputs(
        cpu_per_client_frame=fan.slope,
        bytes_per_frame=fan.bytes_per_frame,
        kb_per_connection=max(runs, key=lambda r: r.clients).kb_per_connection,
        service_cpu_per_event=m.http.service_cpu_per_event,
        postgres_cpu_per_event=pg.server_cpu_per_event or 0.0,
        redis_cpu_per_event=m.http.redis_cpu_per_event,
        redis_view_cpu_per_event=view.cpu_per_event / VIEWS,
        wal_per_event=pg.wal_per_event or 0.0,
        disk_per_event=m.batch.disk_per_event,
        redis_bytes_per_user_view=m.redis[0].bytes_per_user_per_board,
        commit_p50=pg.p50,
        batch_size=pg.size,
    )


# -- formatting ------------------------------------------------------------------------------
def us(seconds: float | None) -> str:
    return "—" if seconds is None or math.isnan(seconds) else f"{seconds * 1e6:,.1f} µs"


def ms(seconds: float) -> str:
    return "—" if math.isnan(seconds) else f"{seconds * 1e3:,.1f} ms"


def num(value: float | None, digits: int = 0) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    cells = [list(headers), *[list(r) for r in rows]]
    widths = [max(len(line[i]) for line in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)) + " |"
             for line in cells]  # fmt: skip
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def fanout_section(ref: FanoutRun, runs: Sequence[FanoutRun], cost: FanoutCost) -> str:
    rows = [
        [f"{r.clients:,}", f"{r.connected:,}", str(r.rounds), num(r.cpu, 2), f"{r.frames:,}",
         num(r.frame_bytes / r.frames if r.frames else float("nan")),
         "—" if r.clients == 1 else num(r.kb_per_connection, 1),
         f"{r.converged:,}/{r.clients:,}, missed {r.missed}", ms(r.p99)]
        for r in (ref, *runs)
    ]  # fmt: skip
    head = ["clients", "connected", "rounds", "service CPU-s (rounds)", "board frames",
            "payload B/frame", "KB RSS/conn", "converged", "p99 POST→frame (wall)"]  # fmt: skip
    return (
        "### 1. Fan-out cost per client (embedded service, /ws/leaderboard?limit=10)\n\n"
        + table(head, rows)
        + f"\n\nCPU per (client × frame): {us(cost.slope)} (least squares over every run), "
        f"{us(cost.cpu_per_client_frame)} (largest run over the one-client run); "
        f"{num(cost.bytes_per_frame)} bytes per frame on the wire (payload + 4-byte header)."
    )


def batch_section(result: BatchResult) -> str:
    rows = [
        [b.backend, str(b.size), str(b.batches), ms(b.p50), ms(b.p95),
         us(b.client_cpu_per_event), us(b.server_cpu_per_event),
         num(b.wal_per_event), num(b.fpi_per_event), num(b.events_per_core_second)]
        for b in result.figures
    ]  # fmt: skip
    head = ["store", "batch", "batches", "commit p50 (wall)", "p95 (wall)", "client CPU/event",
            "PG backend CPU/event", "WAL B/event", "of it FPI B", "events per core-s"]  # fmt: skip
    return (
        "### 2. Batch size vs commit latency (`SqlStore.record_events`, four default boards)\n\n"
        + table(head, rows)
        + f"\n\nPostgreSQL settings: {result.settings}. Database growth: "
        f"{num(result.disk_per_event)} bytes per event (tables and indexes)."
    )


def redis_section(memory: RedisMemory, figures: Sequence[RedisFigures]) -> str:
    rows = [
        [str(f.size), str(f.batches), us(f.cpu_per_event), us(f.cpu_per_event / VIEWS),
         us(f.client_cpu_per_event), num(f.round_trips_per_batch, 2),
         num(f.sent_per_batch, 1), num(f.commands_per_batch, 1)]
        for f in figures
    ]  # fmt: skip
    head = ["batch", "batches", "Redis CPU/event (4 views)", "per view", "client CPU/event",
            "round trips/batch", "EVALSHA/batch", "commands run/batch"]  # fmt: skip
    return (
        "### 3. Redis per event (`RedisRankIndexes.apply_views`, throwaway redis-server)\n\n"
        + table(head, rows)
        + f"\n\nMemory: {num(memory.bytes_per_user_per_board)} bytes per user per board "
        f"(`used_memory` growth over {memory.members:,} users x {memory.views} views; "
        f"{memory.used_memory / 1e6:,.0f} MB used after the fill). A top-10 read of one full "
        f"view (a hub's pass): {us(memory.top10_cpu)} of Redis CPU."
    )


def http_section(h: HttpFigures, verdict: str) -> str:
    top = ", ".join(f"{name} {per:.2f}" for name, per in list(h.redis_commands.items())[:8])
    rows = [
        ["events acknowledged (stored: the per-event divisor)", f"{h.acked:,} ({h.stored:,})"],
        ["rate, wall (shared machine)", f"{h.rate:,.0f} ev/s, p99 {ms(h.p99)}"],
        ["service CPU per event", us(h.service_cpu_per_event)],
        [
            "PostgreSQL backends' CPU per event (lower bound)",
            f"{us(h.postgres_cpu_per_event)} ({h.backends_seen} backends seen)",
        ],
        ["Redis CPU per event", us(h.redis_cpu_per_event)],
        ["Redis commands per event", f"{h.redis_commands_per_event:.1f} ({top})"],
        ["WAL per event", f"{h.wal_per_event:,.0f} B"],
        ["events per commit", num(h.events_per_commit, 1)],
        ["check", verdict],
    ]
    return (
        "### 4. The write path over HTTP (`wrk -t1 -c64`, one `scoreboard serve`, PG + Redis)"
        "\n\n" + table(["figure", "value"], rows)
    )


def plan_section(i: Inputs, a: Assumptions) -> str:
    crow = [
        [f"{r.clients:,}", num(r.fanout_cores, 2), str(r.processes), num(r.memory_gb, 1),
         num(r.egress_mb_s, 1), num(r.worst_cores, 1), num(r.redis_memory_gb, 1),
         str(r.redis_nodes_memory)]
        for r in clients_plan(i, a)
    ]  # fmt: skip
    chead = ["live clients", f"fan-out cores @{a.frames_per_client_s:g}/s", "processes",
             "conn. RSS GB", "egress MB/s", f"cores @{a.worst_frames_per_client_s:g}/s (tick)",
             "Redis GB (views)", "Redis nodes (memory)"]  # fmt: skip
    erow = [
        [f"{r.events_s:,}", num(r.service_cores, 1), str(r.service_processes),
         str(pg_connections(r.service_processes)), num(r.postgres_cores, 1), num(r.wal_mb_s, 1),
         num(r.disk_gb_month), f"{r.rows_month / 1e9:,.2f} G", num(r.redis_cores, 2),
         num(r.view_node_utilisation, 2), str(r.committers_needed)]
        for r in events_plan(i, a)
    ]  # fmt: skip
    ehead = ["events/s", "service cores", "processes", "PG conns (20/proc)", "PG cores",
             "WAL MB/s", "disk GB/month", "rows/month", "Redis cores",
             "busiest view's node", "committers"]  # fmt: skip
    both = [
        [f"{r.clients:,}", f"{r.events_s:,}", num(r.cores, 1), str(r.processes)]
        for r in combined_plan(i, a)
    ]
    per = ", ".join(
        f"{clients_per_process(i, a, f):,} at {f:g}/s" for f in (1, 5, a.worst_frames_per_client_s)
    )
    return (
        f"### Plan (derived; utilisation {a.utilisation:.0%}, batches of {i.batch_size})\n\n"
        + table(chead, crow)
        + "\n\n"
        + table(ehead, erow)
        + "\n\n"
        + table(["live clients", "events/s", "cores (fan-out + writes)", "processes"], both)
        + f"\n\nLive clients per process (one core at {a.utilisation:.0%}): {per}; "
        f"{latency_bound_clients(i, a):,} at most for a pass of {a.pass_budget_s:g} s CPU. "
        f"One view takes at most {max_event_rate_one_view(i, a):,.0f} events/s on its Redis "
        "node."
    )
