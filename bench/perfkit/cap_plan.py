"""The capacity plan as arithmetic over measured figures (pure: no I/O, tested).

`Inputs` are what `bench/capacity.py` measured (CPU per client frame, per event in the
service, PostgreSQL and Redis, WAL and disk per event, memory per connection and per indexed
user); `Assumptions` are the stated ones (headroom, update rate, boards and live views, users
per live client, the size of a node). `clients_plan` and `events_plan` turn both into the
resources for 10k / 100k / 1M live clients and 1k / 10k / 100k events/s. Every output is an
extrapolation of figures measured at a few thousand clients and a few hundred events/s on a
2-core machine: linear in the load, which is the claim each limit in docs/CAPACITY.md checks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

MONTH_SECONDS = 30 * 86_400
POOL_PER_PROCESS = 20  # SQLAlchemy pool_size 10 + max_overflow 10 (store/engine.py)


@dataclass(frozen=True, slots=True)
class Inputs:
    cpu_per_client_frame: float  # service seconds per (client x frame)
    bytes_per_frame: float  # on the wire, WebSocket header included
    kb_per_connection: float  # service RSS per idle live connection
    service_cpu_per_event: float  # the HTTP write path, one process (seconds)
    postgres_cpu_per_event: float  # backends' seconds per event at the planned batch size
    redis_cpu_per_event: float  # the whole write path's Redis seconds (index, limits, notice)
    redis_view_cpu_per_event: float  # the index apply alone, one view, at the batch size
    wal_per_event: float  # bytes
    disk_per_event: float  # bytes of tables and indexes per event (score_events, boards...)
    redis_bytes_per_user_view: float
    commit_p50: float  # seconds, one record_events call at the planned batch size
    batch_size: int  # the batch size the per-event PostgreSQL and Redis figures are taken at


@dataclass(frozen=True, slots=True)
class Assumptions:
    utilisation: float = 0.5  # plan every core and node at 50%: headroom for bursts, failover
    frames_per_client_s: float = 1.0  # a watched top 10 changes about once a second
    tick_ms: float = 50.0  # SCOREBOARD_WS_TICK_MS: at most 1000/tick passes per view per s
    ping_seconds: float = 25.0  # one keepalive frame per client per SCOREBOARD_WS_PING_SECONDS
    live_views: int = 7  # global + (current, previous) of daily, weekly, monthly
    users_per_client: float = 10.0  # registered users per concurrent live client
    node_memory_gb: float = 25.0  # usable memory of one Redis node (of a 32 GB machine)
    pg_cores: int = 32  # a large single PostgreSQL primary
    wal_mb_s_limit: float = 100.0  # WAL a primary and its replicas' streams sustain comfortably
    max_connections: int = 500  # PostgreSQL connections before a pooler is needed
    pass_budget_s: float = 0.2  # CPU one fan-out pass may take on a process (latency bound)

    @property
    def worst_frames_per_client_s(self) -> float:
        """The hub's bound: one pass per tick per view, one frame per client per pass."""
        return 1000.0 / self.tick_ms if self.tick_ms > 0 else math.inf


@dataclass(frozen=True, slots=True)
class ClientsRow:
    clients: int
    frames_per_client_s: float
    fanout_cores: float  # at the assumed utilisation
    processes: int  # one core each
    memory_gb: float  # live connections' RSS over all processes
    egress_mb_s: float  # frames on the wire
    worst_cores: float  # at the tick bound (every view changing every tick)
    redis_memory_gb: float  # the live views of `users_per_client` x clients users
    redis_nodes_memory: int


@dataclass(frozen=True, slots=True)
class EventsRow:
    events_s: int
    service_cores: float
    service_processes: int
    postgres_cores: float
    wal_mb_s: float
    disk_gb_month: float
    rows_month: float  # score_events rows per monthly partition
    redis_cores: float  # whole write path, spread over nodes by user and by view
    view_node_utilisation: float  # the busiest view's node (one slot per view): 1.0 = full
    committers_needed: int  # group committers at commit_p50 per batch of batch_size


def cores(load: float, cost: float, a: Assumptions) -> float:
    return load * cost / a.utilisation


def clients_plan(
    inputs: Inputs, a: Assumptions, tiers: Sequence[int] = (10_000, 100_000, 1_000_000)
) -> list[ClientsRow]:
    rows = []
    frames = a.frames_per_client_s + 1.0 / a.ping_seconds
    worst = a.worst_frames_per_client_s + 1.0 / a.ping_seconds
    for n in tiers:
        fanout = cores(n * frames, inputs.cpu_per_client_frame, a)
        redis_gb = n * a.users_per_client * a.live_views * inputs.redis_bytes_per_user_view / 1e9
        rows.append(
            ClientsRow(
                clients=n,
                frames_per_client_s=a.frames_per_client_s,
                fanout_cores=fanout,
                processes=max(1, math.ceil(fanout)),
                memory_gb=n * inputs.kb_per_connection * 1024 / 1e9,
                egress_mb_s=n * frames * inputs.bytes_per_frame / 1e6,
                worst_cores=cores(n * worst, inputs.cpu_per_client_frame, a),
                redis_memory_gb=redis_gb,
                redis_nodes_memory=max(1, math.ceil(redis_gb / a.node_memory_gb)),
            )
        )
    return rows


def events_plan(
    inputs: Inputs, a: Assumptions, tiers: Sequence[int] = (1_000, 10_000, 100_000)
) -> list[EventsRow]:
    rows = []
    per_committer = inputs.batch_size / inputs.commit_p50 if inputs.commit_p50 > 0 else math.inf
    for rate in tiers:
        service = cores(rate, inputs.service_cpu_per_event, a)
        rows.append(
            EventsRow(
                events_s=rate,
                service_cores=service,
                service_processes=max(1, math.ceil(service)),
                postgres_cores=cores(rate, inputs.postgres_cpu_per_event, a),
                wal_mb_s=rate * inputs.wal_per_event / 1e6,
                disk_gb_month=rate * MONTH_SECONDS * inputs.disk_per_event / 1e9,
                rows_month=rate * MONTH_SECONDS,
                redis_cores=cores(rate, inputs.redis_cpu_per_event, a),
                view_node_utilisation=rate * inputs.redis_view_cpu_per_event,
                committers_needed=max(1, math.ceil(rate / (per_committer * a.utilisation))),
            )
        )
    return rows


@dataclass(frozen=True, slots=True)
class CombinedRow:
    clients: int
    events_s: int
    cores: float  # fan-out + write path, at the utilisation
    processes: int  # the larger of the CPU's count and the latency bound's


def latency_bound_clients(inputs: Inputs, a: Assumptions) -> int:
    """Live clients per process such that one pass over all of them (one frame each) takes
    at most `pass_budget_s` of CPU: the bound on POST -> frame latency, whatever the rate."""
    cost = inputs.cpu_per_client_frame
    return int(a.pass_budget_s / cost) if cost > 0 else 0


def combined_plan(
    inputs: Inputs,
    a: Assumptions,
    clients: Sequence[int] = (10_000, 100_000, 1_000_000),
    events: Sequence[int] = (1_000, 10_000, 100_000),
) -> list[CombinedRow]:
    """Processes for each (live clients, events/s): the same processes serve both, so their
    CPU adds up; never fewer than the latency bound allows per process."""
    fanout = {r.clients: r.fanout_cores for r in clients_plan(inputs, a, clients)}
    writes = {r.events_s: r.service_cores for r in events_plan(inputs, a, events)}
    per_process = max(1, latency_bound_clients(inputs, a))
    rows = []
    for n in clients:
        for rate in events:
            total = fanout[n] + writes[rate]
            processes = max(math.ceil(total), math.ceil(n / per_process), 1)
            rows.append(CombinedRow(n, rate, total, processes))
    return rows


def clients_per_process(inputs: Inputs, a: Assumptions, frames_per_client_s: float) -> int:
    """Live clients one process (one core at the utilisation) can feed at this rate."""
    per_client = (frames_per_client_s + 1.0 / a.ping_seconds) * inputs.cpu_per_client_frame
    return int(a.utilisation / per_client) if per_client > 0 else 0


def max_event_rate_one_view(inputs: Inputs, a: Assumptions) -> float:
    """Events/s one board's view takes on its Redis node (single-threaded) at the
    utilisation: the limit that top-K indexes or score-band sharding move."""
    cost = inputs.redis_view_cpu_per_event
    return a.utilisation / cost if cost > 0 else math.inf


def pg_connections(processes: int) -> int:
    return processes * POOL_PER_PROCESS
