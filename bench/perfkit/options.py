"""The bench's knobs (full run by default, `--quick` for a short smoke run)."""

from __future__ import annotations

from dataclasses import dataclass

SECTIONS = ("ingest", "read", "live", "startup")


@dataclass(frozen=True, slots=True)
class Options:
    runs: int = 3  # best of
    seconds: float = 10.0  # per wrk / pgbench run
    warmup_seconds: float = 2.0
    connections: int = 128  # wrk -c
    pg_clients: int = 16  # pgbench -c
    ingest_users: int = 1000
    read_users: int = 10_000
    live_clients: tuple[int, ...] = (1000, 5000, 10_000)
    live_rounds: int = 20
    lone_rounds: int = 20
    startup_users: int = 1_000_000

    @classmethod
    def quick(cls) -> Options:
        return cls(
            runs=1,
            seconds=3.0,
            warmup_seconds=1.0,
            read_users=2000,
            live_clients=(500,),
            live_rounds=5,
            lone_rounds=5,
            startup_users=50_000,
        )
