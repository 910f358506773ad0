"""Group commit vs one transaction per event, measured in the same run.

    .venv/bin/python bench/group_commit.py [--events 4000] [--concurrency 200] [--pg URL]

Submits the same events through `GroupCommitter` twice against a fresh database: once with the
configured batching (baseline: max_batch=1, i.e. a transaction per event, each committed before
its answer) and once with group commit. Both runs are durable: every answer comes after commit.
Prints events/s and latency percentiles for each and the speed-up.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid

from scoreboard.service.committer import GroupCommitter
from scoreboard.store.base import ScoreCommand
from scoreboard.store.migrate import run_migrations
from scoreboard.store.sql import SqlStore


async def fresh_url(pg: str | None, tmp: str) -> str:
    if not pg:
        return f"sqlite+aiosqlite:///{tmp}/bench-{uuid.uuid4().hex[:6]}.db"
    import asyncpg

    name = f"scoreboard_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(pg)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return f"postgresql+asyncpg://{pg.split('://', 1)[1].rsplit('/', 1)[0]}/{name}"


async def drop(pg: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(pg)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


async def run(url: str, events: int, concurrency: int, max_batch: int) -> dict[str, float]:
    await run_migrations(url)
    store = await SqlStore.open(url, timeout=30)
    users = [await store.create_user(f"b{n}", None, f"b{n}") for n in range(100)]
    committer = GroupCommitter(store, window_seconds=0.002, max_batch=max_batch)
    committer.start()
    latencies: list[float] = []
    semaphore = asyncio.Semaphore(concurrency)

    async def one(n: int) -> None:
        async with semaphore:
            start = time.perf_counter()
            user = users[n % len(users)].user_id
            await committer.submit(ScoreCommand(user, "TASK_COMPLETED", 10, f"k{n}", "h"))
            latencies.append(time.perf_counter() - start)

    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(events)))
    elapsed = time.perf_counter() - started
    await committer.close()
    assert await store.count_events() == events
    await store.close()
    q = statistics.quantiles(latencies, n=100)
    return {"rate": events / elapsed, "p50": q[49] * 1000, "p99": q[98] * 1000}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument(
        "--pg", help="PostgreSQL admin URL, e.g. postgresql://postgres@127.0.0.1/postgres"
    )
    args = parser.parse_args()
    backend = "PostgreSQL" if args.pg else "SQLite (WAL)"
    print(f"{backend}: {args.events} events, {args.concurrency} concurrent submitters")
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for label, batch in (("baseline: transaction per event", 1), ("group commit", args.batch)):
            url = await fresh_url(args.pg, tmp)
            results[label] = r = await run(url, args.events, args.concurrency, batch)
            print(
                f"  {label:<32} {r['rate']:>9.0f} events/s   "
                f"p50 {r['p50']:>7.1f} ms   p99 {r['p99']:>7.1f} ms"
            )
            if args.pg:
                await drop(args.pg, url.rsplit("/", 1)[1])
    base, group = results.values()
    print(f"  speed-up: {group['rate'] / base['rate']:.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
