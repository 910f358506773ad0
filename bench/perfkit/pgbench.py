"""The ingest baseline: pgbench, one event per transaction, in a scratch database.

Each transaction inserts one row into an events table and upserts the user's total, the same
two writes the service makes per event, committed before the next: what a server without
group commit could do at best. Tables and script are created in a database the bench makes
and drops.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE events (id BIGSERIAL PRIMARY KEY, user_id TEXT NOT NULL, points BIGINT NOT NULL,
                     created_at TIMESTAMPTZ NOT NULL);
CREATE INDEX ix_events_user_id ON events (user_id);
CREATE TABLE totals (user_id TEXT PRIMARY KEY, score BIGINT NOT NULL,
                     updated_at TIMESTAMPTZ NOT NULL);
"""


def script(users: int, points: int) -> str:
    """The pgbench transaction: one event insert and one total upsert."""
    return f"""\\set uid random(1, {users})
BEGIN;
INSERT INTO events (user_id, points, created_at) VALUES ('u' || :uid, {points}, now());
INSERT INTO totals (user_id, score, updated_at) VALUES ('u' || :uid, {points}, now())
  ON CONFLICT (user_id) DO UPDATE SET score = totals.score + EXCLUDED.score,
  updated_at = EXCLUDED.updated_at;
COMMIT;
"""


@dataclass(frozen=True, slots=True)
class PgbenchResult:
    tps: float
    latency_ms: float | None


def parse_output(stdout: str) -> PgbenchResult:
    """tps (without initial connection time) and the average latency from pgbench's summary."""
    tps = re.search(r"^tps = ([0-9.]+)", stdout, re.M)
    if not tps:
        raise RuntimeError(f"no tps in pgbench output: {stdout[-400:]!r}")
    latency = re.search(r"^latency average = ([0-9.]+) ms", stdout, re.M)
    return PgbenchResult(float(tps.group(1)), float(latency.group(1)) if latency else None)


def run_pgbench(
    dsn_args: list[str], script_file: Path, clients: int, seconds: float
) -> PgbenchResult:
    """One timed pgbench run (`-n`: no vacuum of pgbench's own tables, which we do not use)."""
    cmd = ["pgbench", "-n", f"-c{clients}", "-j2", f"-T{max(1, round(seconds))}"]
    done = subprocess.run(
        [*cmd, "-f", str(script_file), *dsn_args],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pgbench failed: {done.stderr.strip()[-300:]}")
    return parse_output(done.stdout)
