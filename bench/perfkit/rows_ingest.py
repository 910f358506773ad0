"""Rows: `POST /api/v1/scores/events` over HTTP with JWT vs pgbench, and PG reads 1 vs 2 procs.

1,000 users, each with a token of its own (rotated per request by the wrk script), a unique
`Idempotency-Key` per request, c128, best of N. Embedded default; PostgreSQL + Redis with one
process; then two processes on the same database. Correctness: every acknowledged event id
is in `score_events`, and the totals equal the events' points.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import httpx

from . import pgbench
from .checks import Verdict, check_ingest, check_statuses
from .env import BenchEnv, pg_query, start_services
from .loads import Load, Request, drive
from .options import Options
from .populate import fill_postgres, fill_sqlite, write_tokens
from .procs import Procs
from .table import Row, millis, rate, ratio

ACTION = "TASK_COMPLETED"
POST = "POST /api/v1/scores/events"


def action_points(url: str) -> int:
    """The catalogue's points for the action the bench posts (the service decides them)."""
    catalogue = httpx.get(f"{url}/api/v1/actions", timeout=10).json()
    items = catalogue if isinstance(catalogue, list) else catalogue.get("actions", [])
    return int(next(a["points"] for a in items if a["action_type"] == ACTION))


def post_request(tokens: Path) -> Request:
    return Request("POST", "/api/v1/scores/events", {"action_type": ACTION}, tokens, True, True)


def baseline(env: BenchEnv, opts: Options, workdir: Path) -> tuple[float, Verdict]:
    """pgbench, best of `opts.runs`, in a scratch database; checked: count x points = sum."""
    script = workdir / "pgbench-event.sql"
    workdir.mkdir(parents=True, exist_ok=True)
    script.write_text(pgbench.script(opts.ingest_users, 10))
    with env.scratch_database("pgbench") as name:
        dsn = env.pg_url(name)
        pg_query(dsn, pgbench.SCHEMA)
        args = ["-h", "127.0.0.1", "-U", "postgres", name]
        best = max(
            pgbench.run_pgbench(args, script, opts.pg_clients, opts.seconds).tps
            for _ in range(opts.runs)
        )
        count = pg_query(dsn, "SELECT count(*) FROM events")[0][0]
        total = pg_query(dsn, "SELECT coalesce(sum(score), 0) FROM totals")[0][0]
    ok = total == 10 * count
    return best, Verdict(ok, f"pgbench {count} events, totals {'=' if ok else '!='} sum")


def ingest_row(path: str, load: Load, verdict: Verdict, base: float) -> Row:
    assert load.best is not None
    figure = f"{rate(load.best.ok_rate, 'ev/s')} (p99 {millis(load.best.p99)})"
    codes = ", ".join(f"{n}x {code}" for code, n in sorted(load.bad_codes.items()))
    bad = f"; {load.bad} non-2xx ({codes})" if load.bad else ""
    return Row(
        path,
        figure,
        f"pgbench c16: {rate(base, 'txn/s')}",
        ratio(load.best.ok_rate, base),
        verdict.cell() + bad,
    )


ONE_BOARD = '{"boards": [{"board_id": "global", "title": "All time"}]}'


def embedded(env: BenchEnv, opts: Options, base: float) -> list[Row]:
    """The embedded default twice: with one board (`global` only, as before boards existed)
    and with the four default boards (global, daily, weekly, monthly: three more rows per
    event, in the same transaction)."""
    one_file = env.workdir / "ingest-embedded-one" / "boards.json"
    one_file.parent.mkdir(parents=True, exist_ok=True)
    one_file.write_text(ONE_BOARD)
    one, one_verdict = embedded_run(env, opts, "ingest-embedded-one", one_file)
    four, four_verdict = embedded_run(env, opts, "ingest-embedded", None)
    path = f"`{POST}`, embedded, c{opts.connections}"
    assert one.best is not None and four.best is not None
    return [
        ingest_row(f"{path}, one board", one, one_verdict, base),
        ingest_row(f"{path}, four default boards", four, four_verdict, base),
        Row(
            "same, four default boards (vs one board)",
            f"{rate(four.best.ok_rate, 'ev/s')}",
            f"one board: {rate(one.best.ok_rate, 'ev/s')}",
            ratio(four.best.ok_rate, one.best.ok_rate),
            four_verdict.cell(),
        ),
    ]


def embedded_run(
    env: BenchEnv, opts: Options, name: str, boards_file: Path | None
) -> tuple[Load, Verdict]:
    workdir = env.workdir / name
    data = workdir / "data"
    service_env = env.service_env(data)
    if boards_file is not None:
        service_env["SCOREBOARD_BOARDS_FILE"] = str(boards_file)
    env.migrate(service_env)
    fill_sqlite(data / "scoreboard.db", opts.ingest_users, scored=False)
    tokens = workdir / "tokens.txt"
    write_tokens(tokens, env.secret, range(opts.ingest_users))
    with Procs(workdir) as procs:
        urls = start_services(procs, service_env)
        points = action_points(urls[0])
        load = drive(urls, workdir, "emb", post_request(tokens), opts)
    # Counted once the service has stopped: events cut off in flight have finished committing.
    ids, total = sqlite_totals(data)
    verdict = check_ingest(load.acked_ids, ids, total, points, load.cut_off_bound)
    return load, boards_agree(verdict, sqlite_board_sums(data), total)


def boards_agree(verdict: Verdict, sums: dict[str, int], total: int) -> Verdict:
    """Every windowed board sums every action: over its periods it holds the total."""
    wrong = [f"{board} {got} != {total}" for board, got in sums.items() if got != total]
    if wrong:
        return Verdict(False, verdict.text + "; boards: " + ", ".join(wrong))
    if not sums:
        return verdict
    return Verdict(verdict.ok, verdict.text + f"; {len(sums)} more boards = totals")


def sqlite_board_sums(data: Path) -> dict[str, int]:
    conn = sqlite3.connect(data / "scoreboard.db")
    try:
        rows = conn.execute("SELECT board_id, sum(score) FROM board_scores GROUP BY board_id")
        return {str(board): int(total) for board, total in rows}
    finally:
        conn.close()


def sqlite_totals(data: Path) -> tuple[list[int], int]:
    conn = sqlite3.connect(data / "scoreboard.db")
    try:
        ids = [row[0] for row in conn.execute("SELECT id FROM score_events")]
        total = conn.execute("SELECT coalesce(sum(score), 0) FROM user_scores").fetchone()[0]
    finally:
        conn.close()
    return ids, int(total)


def pg_totals(dsn: str) -> tuple[list[int], int]:
    ids = [int(row[0]) for row in pg_query(dsn, "SELECT id FROM score_events")]
    total = pg_query(dsn, "SELECT coalesce(sum(score), 0) FROM user_scores")[0][0]
    return ids, int(total)


def scaled(env: BenchEnv, opts: Options, base: float) -> list[Row]:
    """PostgreSQL + Redis: one process, then two on the same database and prefix."""
    workdir = env.workdir / "ingest-scaled"
    tokens = workdir / "tokens.txt"
    with env.scratch_database("ingest") as name, env.redis_prefix("ingest") as prefix:
        service_env = env.service_env(workdir / "data", name, prefix)
        env.migrate(service_env)
        asyncio.run(fill_postgres(env.pg_url(name), env.cache, opts.ingest_users, False))
        write_tokens(tokens, env.secret, range(opts.ingest_users))
        one, reads_one = scaled_phase(env, opts, service_env, 1, tokens)
        two, reads_two = scaled_phase(env, opts, service_env, 2, tokens)
        ids, total = pg_totals(env.pg_url(name))
        sums = pg_query(
            env.pg_url(name), "SELECT board_id, sum(score) FROM board_scores GROUP BY board_id"
        )
    acked = one.load.acked_ids + two.load.acked_ids
    bound = one.load.cut_off_bound + two.load.cut_off_bound
    verdict = check_ingest(acked, ids, total, one.points, bound)
    verdict = boards_agree(verdict, {str(b): int(t) for b, t in sums}, total)
    return scaled_rows(one.load, two.load, reads_one, reads_two, verdict, base)


def scaled_rows(
    one: Load, two: Load, reads_one: Load, reads_two: Load, verdict: Verdict, base: float
) -> list[Row]:
    assert one.best and two.best and reads_one.best and reads_two.best
    path = f"`{POST}`, PostgreSQL + Redis, one process, four default boards"
    statuses = check_statuses(
        reads_one.ok + reads_two.ok,
        reads_one.bad + reads_two.bad,
        reads_one.bad_codes + reads_two.bad_codes,
    )
    return [
        ingest_row(path, one, verdict, base),
        Row(
            "same, two processes (vs one)",
            f"{rate(two.best.ok_rate, 'ev/s')} (p99 {millis(two.best.p99)})",
            f"one process: {rate(one.best.ok_rate, 'ev/s')}",
            ratio(two.best.ok_rate, one.best.ok_rate),
            verdict.cell() + " (both phases)",
        ),
        Row(
            "`GET /api/v1/leaderboard?limit=10`, PG + Redis, two processes (vs one)",
            rate(reads_two.best.ok_rate, "req/s"),
            f"one process: {rate(reads_one.best.ok_rate, 'req/s')}",
            ratio(reads_two.best.ok_rate, reads_one.best.ok_rate),
            statuses.cell(),
        ),
    ]


@dataclass
class Phase:
    load: Load
    points: int


def scaled_phase(
    env: BenchEnv, opts: Options, service_env: dict[str, str], count: int, tokens: Path
) -> tuple[Phase, Load]:
    """`count` processes: the ingest load, then the top-10 read load."""
    workdir = env.workdir / "ingest-scaled" / f"procs-{count}"
    with Procs(workdir) as procs:
        urls = start_services(procs, service_env, count)
        points = action_points(urls[0])
        load = drive(urls, workdir, f"pg{count}", post_request(tokens), opts)
        reads = drive(urls, workdir, f"pgread{count}", TOP10, opts)
    return Phase(load, points), reads


TOP10 = Request("GET", "/api/v1/leaderboard?limit=10")
