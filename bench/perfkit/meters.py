"""What the capacity bench reads instead of wall-clock rates: CPU seconds of processes (from
/proc), a throwaway Redis's own CPU and command counts (INFO), PostgreSQL backends' CPU and the
WAL one database wrote (pg_walinspect). Counts and CPU time stay steady on a loaded machine;
wall-clock figures do not, and every table says which is which.

The parsers (`parse_stat_cpu`, `parse_info`, `quantile`) are pure; the rest reads live state.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .procs import Procs, free_ports, iter_until

TICKS = os.sysconf("SC_CLK_TCK")


def parse_stat_cpu(stat: str) -> float:
    """utime + stime of a `/proc/PID/stat` line, in seconds (the name may hold spaces and
    parentheses: fields are counted after the last `)`)."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # fields 14 and 15 of proc(5)


def proc_cpu(pid: int) -> float:
    """CPU seconds the process has used so far (0.0 once it is gone)."""
    try:
        return parse_stat_cpu(Path(f"/proc/{pid}/stat").read_text())
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


def cpu_of(pids: Sequence[int]) -> dict[int, float]:
    return {pid: proc_cpu(pid) for pid in pids}


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU used between two readings of a set of processes; one that appeared since counts
    from 0, one that exited since is lost (the caller says so when it matters)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def parse_info(text: str) -> dict[str, str]:
    """`INFO` as redis-server sends it: `key:value` lines, `#` section headers."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and ":" in line:
            key, value = line.split(":", 1)
            out[key] = value.strip()
    return out


def command_calls(info: dict[str, str]) -> dict[str, int]:
    """`INFO commandstats` as {command: calls} (commands run by scripts included)."""
    calls = {}
    for key, value in info.items():
        if key.startswith("cmdstat_"):
            fields = dict(part.split("=", 1) for part in value.split(","))
            calls[key[len("cmdstat_") :]] = int(fields["calls"])
    return calls


def quantile(values: Sequence[float], q: float) -> float:
    """The nearest-rank quantile (NaN for no values)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


@dataclass(frozen=True, slots=True)
class RedisReading:
    cpu: float  # used_cpu_user + used_cpu_sys, seconds
    memory: int  # used_memory, bytes
    calls: dict[str, int]


class ThrowawayRedis:
    """A redis-server of the bench's own on a free port of 127.0.0.1 (no persistence, no
    other client), so its CPU and memory are the bench's alone. Stopped with its `Procs`."""

    def __init__(self, procs: Procs, workdir: Path) -> None:
        self.port = free_ports()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        workdir.mkdir(parents=True, exist_ok=True)
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        cmd += ["--save", "", "--appendonly", "no", "--dir", str(workdir)]
        cmd += ["--maxmemory-policy", "noeviction", "--protected-mode", "yes"]
        self.proc = procs.start(f"redis-{self.port}", cmd)
        for _ in iter_until(time.monotonic() + 30):
            if self._cli("PING") == "PONG":
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            time.sleep(0.05)
        raise TimeoutError("redis-server did not answer PING within 30 s")

    def _cli(self, *args: str) -> str:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            done = subprocess.run(
                ["redis-cli", "-p", str(self.port), *args],
                capture_output=True,
                text=True,
                timeout=10,
            )
            return done.stdout.strip()
        return ""

    def reading(self) -> RedisReading:
        """CPU, memory and command counts now (one INFO over redis-cli: its own INFO call is
        counted too, once per reading)."""
        info = parse_info(self._cli("INFO", "everything"))
        cpu = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        return RedisReading(cpu, int(info["used_memory"]), command_calls(info))


def calls_between(before: RedisReading, after: RedisReading) -> dict[str, int]:
    """Commands run between two readings, without the readings' own INFO calls."""
    out = {}
    for name, calls in after.calls.items():
        done = calls - before.calls.get(name, 0) - (1 if name == "info" else 0)
        if done:
            out[name] = done
    return out


# -- PostgreSQL ------------------------------------------------------------------------------
WAL_OF_DATABASE = """
WITH r AS (SELECT xid, record_length, fpi_length, block_ref
           FROM pg_get_wal_records_info($1::text::pg_lsn, $2::text::pg_lsn)),
     x AS (SELECT DISTINCT xid FROM r
           WHERE xid::text <> '0' AND block_ref LIKE '%rel %/' || $3::text || '/%')
SELECT count(*), coalesce(sum(record_length), 0), coalesce(sum(fpi_length), 0)
FROM r WHERE xid IN (SELECT xid FROM x)
"""


@dataclass(frozen=True, slots=True)
class Wal:
    records: int
    bytes: int
    fpi_bytes: int  # full-page images among them (first change of a page after a checkpoint)


@contextlib.contextmanager
def wal_held(dsn: str) -> Iterator[str]:
    """Keep the server from recycling WAL for the block: a temporary physical replication
    slot, held by a `psql` session of its own, so that pg_walinspect can still read segments
    a busy shared server would otherwise remove at its next checkpoint. The server drops a
    temporary slot when its session ends, however it ends (the block's end closes psql's
    input; if the bench dies, so does the pipe). Yields the slot's name."""
    from .env import pg_query

    name = f"scoreboard_capacity_{os.getpid()}_{time.monotonic_ns() % 10**9}"
    psql = subprocess.Popen(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", dsn],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert psql.stdin is not None
        psql.stdin.write(f"SELECT pg_create_physical_replication_slot('{name}', true, true);\n")
        psql.stdin.flush()
        query = "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1"
        for _ in iter_until(time.monotonic() + 30):
            if pg_query(dsn, query, name):
                break
            if psql.poll() is not None:
                raise RuntimeError(f"psql could not create the WAL slot (status {psql.returncode})")
            time.sleep(0.05)
        else:
            raise TimeoutError("the temporary WAL slot did not appear within 30 s")
        yield name
    finally:
        with contextlib.suppress(OSError):
            if psql.stdin is not None:
                psql.stdin.close()
        try:
            psql.wait(10)
        except subprocess.TimeoutExpired:
            psql.kill()
            psql.wait(5)


async def wal_of_database(conn: Any, start: str, end: str, database_oid: int) -> Wal:
    """The WAL written between two LSNs by the transactions that touched `database_oid`'s
    relations (their commit records included), read back with pg_walinspect: other
    databases' writes on a shared server are left out."""
    row = await conn.fetchrow(WAL_OF_DATABASE, start, end, str(database_oid))
    return Wal(int(row[0]), int(row[1]), int(row[2]))


def backends_by_title(database: str) -> list[int]:
    """PostgreSQL backends of `database` on this machine, by process title
    (`postgres: <cluster>: <user> <database> <client> <state>`)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        parts = title.split()
        if title.startswith("postgres: ") and len(parts) > 4 and parts[3] == database:
            out.append(int(entry.name))
    return out


class BackendSampler:
    """The CPU of a database's backends over a span, sampled every `every` seconds from a
    thread (a backend that exits keeps its last sample: the pool's short-lived overflow
    connections lose at most `every` seconds of work each, or all of it when they live
    shorter than that, so the figure is a lower bound). `backends` counts those seen."""

    def __init__(self, database: str, every: float = 0.1) -> None:
        import threading

        self._database, self._every = database, every
        self._start = cpu_of(backends_by_title(database))
        self._last = dict(self._start)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self._sample()

    def _sample(self) -> None:
        for pid, cpu in cpu_of(backends_by_title(self._database)).items():
            self._last[pid] = max(cpu, self._last.get(pid, 0.0))

    def stop(self) -> tuple[float, int]:
        """(CPU seconds used since the start, backends seen)."""
        self._stop.set()
        self._thread.join()
        self._sample()
        return cpu_delta(self._start, self._last), len(self._last)


async def backend_pids(conn: Any, database: str) -> list[int]:
    """The PostgreSQL backends connected to `database`, except `conn`'s own."""
    rows = await conn.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        database,
    )
    return [int(r[0]) for r in rows]


@contextlib.contextmanager
def cpu_span() -> Iterator[list[float]]:
    """This process's CPU seconds (every thread) over the block: `[seconds]` once it ends."""
    out: list[float] = []
    started = time.process_time()
    try:
        yield out
    finally:
        out.append(time.process_time() - started)
