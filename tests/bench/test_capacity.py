"""The capacity bench's helpers (bench/capacity.py): the parsers and the plan's arithmetic,
and the meters against a real redis-server and the real PostgreSQL (never timings)."""

from __future__ import annotations

import asyncio
import math
import os
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from bench.perfkit import cap_redis
from bench.perfkit.cap_batch import BatchFigures, BatchResult
from bench.perfkit.cap_fanout import FanoutRun, cost, slope
from bench.perfkit.cap_http import HttpFigures, check, metric_sum
from bench.perfkit.cap_plan import (
    MONTH_SECONDS,
    Assumptions,
    Inputs,
    clients_per_process,
    clients_plan,
    combined_plan,
    events_plan,
    max_event_rate_one_view,
)
from bench.perfkit.cap_redis import RedisFigures, RedisMemory
from bench.perfkit.cap_report import Measured, at_size, inputs, plan_section
from bench.perfkit.meters import (
    TICKS,
    RedisReading,
    backends_by_title,
    calls_between,
    command_calls,
    parse_info,
    parse_stat_cpu,
    proc_cpu,
    quantile,
    wal_held,
    wal_of_database,
)
from bench.perfkit.procs import Procs
from tests.conftest import PG_ADMIN_URL, require_commands, require_service


def test_stat_line_with_parentheses_in_the_name_is_read_after_the_last_one() -> None:
    fields = ["S"] + ["0"] * 10 + [str(3 * TICKS), str(TICKS)] + ["0"] * 30
    line = "4242 (a (b) c) " + " ".join(fields)
    assert parse_stat_cpu(line) == 4.0


def test_own_cpu_grows_while_busy() -> None:
    before = proc_cpu(os.getpid())
    spent = 0
    while proc_cpu(os.getpid()) <= before:  # bounded by the clock tick: ends within ms
        spent += sum(range(10_000))
    assert proc_cpu(os.getpid()) > before and spent >= 0
    assert proc_cpu(2**22 + 12345) == 0.0  # no such process


def test_info_and_commandstats_are_parsed_and_the_readings_own_info_left_out() -> None:
    text = (
        "# CPU\r\nused_cpu_sys:1.5\r\nused_cpu_user:2.25\r\n\r\n# Commandstats\r\n"
        "cmdstat_evalsha:calls=4,usec=80,usec_per_call=20.00,rejected_calls=0,failed_calls=0\r\n"
        "cmdstat_info:calls=7,usec=1,usec_per_call=0.1,rejected_calls=0,failed_calls=0\r\n"
    )
    info = parse_info(text)
    assert info["used_cpu_user"] == "2.25"
    assert command_calls(info) == {"evalsha": 4, "info": 7}
    before = RedisReading(1.0, 10, {"evalsha": 4, "info": 7})
    after = RedisReading(2.0, 20, {"evalsha": 10, "info": 8, "zadd": 3})
    assert calls_between(before, after) == {"evalsha": 6, "zadd": 3}


def test_quantile_is_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert quantile(values, 0.5) == 50.0
    assert quantile(values, 0.95) == 95.0
    assert quantile([7.0], 0.95) == 7.0
    assert math.isnan(quantile([], 0.5))


def run_of(clients: int, frames: int, cpu: float) -> FanoutRun:
    return FanoutRun(clients, clients, 10, cpu, frames, frames * 970, 26.0, 0, clients, 0.05)


def test_fanout_cost_is_the_growth_per_frame_and_the_fit_agrees_on_a_line() -> None:
    ref = run_of(1, 10, 0.1)
    runs = [run_of(1000, 10_000, 0.1 + 9_990 * 20e-6), run_of(2000, 20_000, 0.1 + 19_990 * 20e-6)]
    c = cost(ref, runs)
    assert c.cpu_per_client_frame == pytest.approx(20e-6)
    assert c.slope == pytest.approx(20e-6)
    assert c.bytes_per_frame == pytest.approx(974.0)
    assert math.isnan(slope([(1.0, 2.0), (1.0, 3.0)]))


INPUTS = Inputs(
    cpu_per_client_frame=20e-6,
    bytes_per_frame=1000.0,
    kb_per_connection=25.0,
    service_cpu_per_event=2e-3,
    postgres_cpu_per_event=0.5e-3,
    redis_cpu_per_event=0.2e-3,
    redis_view_cpu_per_event=20e-6,
    wal_per_event=5000.0,
    disk_per_event=1500.0,
    redis_bytes_per_user_view=500.0,
    commit_p50=0.05,
    batch_size=100,
)


def test_plan_for_live_clients() -> None:
    a = Assumptions(ping_seconds=25.0)
    rows = {r.clients: r for r in clients_plan(INPUTS, a)}
    big = rows[1_000_000]
    # 1M clients x (1 + 1/25) frames/s x 20 µs, at 50%: 41.6 cores
    assert big.fanout_cores == pytest.approx(41.6)
    assert big.processes == 42
    assert big.memory_gb == pytest.approx(25.6)
    assert big.egress_mb_s == pytest.approx(1040.0)
    assert big.worst_cores == pytest.approx(1_000_000 * 20.04 * 20e-6 / 0.5)
    # 10M users x 7 views x 500 B = 35 GB: two 25 GB nodes
    assert big.redis_memory_gb == pytest.approx(35.0)
    assert big.redis_nodes_memory == 2
    assert rows[10_000].processes == 1
    assert clients_per_process(INPUTS, a, 1.0) == 24_038


def test_plan_for_event_rates() -> None:
    a = Assumptions()
    rows = {r.events_s: r for r in events_plan(INPUTS, a)}
    top = rows[100_000]
    assert top.service_cores == pytest.approx(400.0)
    assert top.service_processes == 400
    assert top.postgres_cores == pytest.approx(100.0)
    assert top.wal_mb_s == pytest.approx(500.0)
    assert top.rows_month == 100_000 * MONTH_SECONDS
    assert top.redis_cores == pytest.approx(40.0)
    assert top.view_node_utilisation == pytest.approx(2.0)  # past one node: the view limit
    # one committer: 100 events per 50 ms = 2000/s, at 50%: 1000/s
    assert top.committers_needed == 100
    assert rows[1_000].committers_needed == 1
    assert max_event_rate_one_view(INPUTS, a) == pytest.approx(25_000.0)


def test_combined_plan_adds_both_loads_and_keeps_the_latency_bound() -> None:
    a = Assumptions(pass_budget_s=0.2)  # 0.2 s / 20 µs: 10,000 clients per process
    rows = {(r.clients, r.events_s): r for r in combined_plan(INPUTS, a)}
    small = rows[(10_000, 1_000)]
    assert small.cores == pytest.approx(10_000 * 1.04 * 20e-6 / 0.5 + 1_000 * 2e-3 / 0.5)
    assert small.processes == 5  # 4.42 cores
    assert rows[(1_000_000, 1_000)].processes == 100  # the latency bound, not the 45.6 cores
    assert rows[(1_000_000, 100_000)].processes == 442  # 41.6 + 400 cores


def measured() -> Measured:
    ref = run_of(1, 10, 0.1)
    runs = [run_of(500, 5000, 0.2), run_of(1000, 10_000, 0.3)]
    batch = [
        BatchFigures("postgresql", size, 10, 0.01 * size, 0.02 * size, 1e-4, 5e-4, 4e3, 1e3)
        for size in (1, 10, 50, 100, 500)
    ] + [BatchFigures("sqlite", 100, 10, 0.1, 0.2, 2e-4, None, None, None)]
    redis = [RedisFigures(size, 10, 64e-6, 5e-5, 1.0, 4.0, 40.0 * size) for size in (10, 100)]
    http = HttpFigures(100, 110, 0, 5.0, 2e-3, 5e-4, 2e-4, 42.0, 4e3, 30.0, 0.5, {"hset": 13.0}, 60)
    return Measured(
        "t",
        (ref, runs, cost(ref, runs)),
        BatchResult(batch, 1500.0, "fsync=on"),
        (RedisMemory(1000, 4, 490.0, 10**7, 50e-6), redis),
        http,
    )


def test_measured_figures_survive_json_and_feed_the_plan() -> None:
    import json

    m = measured()
    again = Measured.from_json(json.loads(json.dumps(m.to_json())))
    assert again == m
    i = inputs(again)
    assert i is not None
    assert i.batch_size == 100 and i.commit_p50 == pytest.approx(1.0)
    assert i.redis_view_cpu_per_event == pytest.approx(16e-6)  # four views per event
    assert i.kb_per_connection == 26.0
    assert "1,000,000" in plan_section(i, Assumptions())
    assert inputs(Measured("partial")) is None
    assert at_size(m.batch.figures[:5], 64).size == 50  # type: ignore[union-attr]


def test_metrics_sum_every_label_set_and_the_http_check() -> None:
    text = 'a_sum 3.0\na_sum{x="1"} 2.5\na_count 4\nab_sum 100\n'
    assert metric_sum(text, "a_sum") == 5.5
    http = measured().http
    assert http is not None and check(http).startswith("ok")
    lost = HttpFigures(100, 99, 0, 5.0, 0, 0, 0, 0, 0, 0, 0, {})
    assert check(lost).startswith("FAILED")


def test_redis_batch_apply_is_one_round_trip_of_one_script_call_per_view(tmp_path: Path) -> None:
    require_commands("redis-server", "redis-cli")
    with Procs(tmp_path) as procs:
        redis = cap_redis.ThrowawayRedis(procs, tmp_path / "redis")
        memory, figures = asyncio.run(cap_redis.measure(redis, (1, 20), 2000, 40, 5))
    assert memory.views == 4 and memory.bytes_per_user_per_board > 100
    for f in figures:
        assert f.round_trips_per_batch == 1.0
        assert f.sent_per_batch == 4.0
        assert f.commands_per_batch > f.sent_per_batch * f.size  # the scripts' own commands


def test_wal_is_counted_for_one_database_only_and_backends_found_by_title(
    fresh_pg_url: str,
) -> None:
    require_service("PostgreSQL", PG_ADMIN_URL, 5432)
    require_commands("psql")
    import asyncpg

    parts = urlsplit(PG_ADMIN_URL)
    mine = fresh_pg_url.rsplit("/", 1)[1]
    other = f"scoreboard_t_{uuid.uuid4().hex[:10]}"

    async def scenario() -> tuple[int, int, bool]:
        admin = await asyncpg.connect(PG_ADMIN_URL)
        await admin.execute(f'CREATE DATABASE "{other}"')
        try:
            a = await asyncpg.connect(f"postgresql://{parts.netloc}/{mine}")
            b = await asyncpg.connect(f"postgresql://{parts.netloc}/{other}")
            found = await a.fetchval("SELECT pg_backend_pid()") in backends_by_title(mine)
            await a.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
            oid_a = await admin.fetchval("SELECT oid FROM pg_database WHERE datname=$1", mine)
            oid_b = await admin.fetchval("SELECT oid FROM pg_database WHERE datname=$1", other)
            await b.execute("CREATE TABLE t (x int)")
            start = await a.fetchval("SELECT pg_current_wal_insert_lsn()::text")
            await b.execute("INSERT INTO t SELECT generate_series(1, 1000)")
            end = await a.fetchval("SELECT pg_current_wal_flush_lsn()::text")
            in_a = await wal_of_database(a, start, end, int(oid_a))
            in_b = await wal_of_database(a, start, end, int(oid_b))
            await a.close()
            await b.close()
            return in_a.bytes, in_b.bytes, found
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{other}" WITH (FORCE)')
            await admin.close()

    with wal_held(PG_ADMIN_URL) as slot:
        in_mine, in_other, found = asyncio.run(scenario())

    async def slots() -> list[str]:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            return [r[0] for r in await conn.fetch("SELECT slot_name FROM pg_replication_slots")]
        finally:
            await conn.close()

    assert found
    assert in_mine == 0  # the other database's inserts are not counted for this one
    assert in_other > 1000 * 20  # a heap record per row, at least
    assert slot not in asyncio.run(slots())  # the temporary slot went with its session
