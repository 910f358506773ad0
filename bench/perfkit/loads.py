"""Drive one or more service processes with wrk: warm-up, best of N, every answer counted.

With several processes (no load balancer in between), each gets its own `wrk -t1` with an
equal share of the connections, all started together; a run's figure is their sum.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .options import Options
from .wrk import WrkResult, finish_wrk, render_lua, start_wrk


@dataclass(frozen=True, slots=True)
class Request:
    """What every request of a load looks like (see `perfkit.wrk.render_lua`)."""

    method: str
    path: str
    body: dict[str, object] | None = None
    tokens_file: Path | None = None
    idempotent: bool = False  # a unique Idempotency-Key per request
    record_ids: bool = False  # write acknowledged event ids for the correctness check


@dataclass
class Load:
    best: WrkResult | None = None
    ok: int = 0  # over every run, warm-up included
    bad: int = 0
    socket_errors: int = 0
    acked_ids: list[int] = field(default_factory=list)
    cut_off_bound: int = 0  # requests possibly in flight when a wrk stopped
    bad_codes: Counter[str] = field(default_factory=Counter)


def combine(results: Sequence[WrkResult]) -> WrkResult:
    """Simultaneous wrk instances as one: counts add up, the slowest percentile counts."""
    return WrkResult(
        ok=sum(r.ok for r in results),
        bad=sum(r.bad for r in results),
        requests=sum(r.requests for r in results),
        seconds=max(r.seconds for r in results),
        p50=max(r.p50 for r in results),
        p99=max(r.p99 for r in results),
        socket_errors=sum(r.socket_errors for r in results),
        bad_codes=dict(sum((Counter(r.bad_codes) for r in results), Counter[str]())),
    )


def drive(urls: Sequence[str], workdir: Path, tag: str, request: Request, opts: Options) -> Load:
    """A warm-up run, then `opts.runs` timed runs; the best run's figure and all the counts."""
    load = Load()
    for run in range(opts.runs + 1):
        seconds = opts.seconds if run else opts.warmup_seconds
        result = one_run(urls, workdir, f"{tag}-{run}", request, opts, seconds, load)
        if run and (load.best is None or result.ok_rate > load.best.ok_rate):
            load.best = result
    return load


def one_run(
    urls: Sequence[str],
    workdir: Path,
    tag: str,
    request: Request,
    opts: Options,
    seconds: float,
    load: Load,
) -> WrkResult:
    share = max(1, opts.connections // len(urls))
    body = json.dumps(request.body) if request.body is not None else None
    running = []
    for n, url in enumerate(urls):
        ids = workdir / f"ids-{tag}-{n}.txt" if request.record_ids else None
        script = workdir / f"wrk-{tag}-{n}.lua"
        script.write_text(
            render_lua(
                request.method,
                request.path,
                body,
                tokens_file=request.tokens_file,
                key_prefix=f"{tag}-{n}" if request.idempotent else None,
                ids_file=ids,
            )
        )
        running.append((ids, start_wrk(url, script, share, seconds)))
    results = [finish_wrk(proc, seconds) for _, proc in running]
    for ids, _ in running:
        if ids is not None and ids.exists():
            load.acked_ids.extend(int(x) for x in ids.read_text().split())
    merged = combine(results)
    load.ok, load.bad = load.ok + merged.ok, load.bad + merged.bad
    load.socket_errors += merged.socket_errors
    load.bad_codes.update(merged.bad_codes)
    load.cut_off_bound += share * len(urls)
    return merged
