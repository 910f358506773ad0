"""The ranks a committed batch's answers carry where the rank index could not tell them.

While a view's index is unusable (lost, being rebuilt after a Redis failover, or its update
just failed), `LeaderboardService.committed` gets no rank from it. Asking SQL per request and
per board (as the answer's fallback does) costs every write one round trip per board it counts
on, each request on its own, inside its own database budget: during a rebuild after a Redis
failover that tripled the writes' database work and ran requests out of
`SCOREBOARD_DB_TIMEOUT_SECONDS` after their events were durably committed.

Instead the batch asks once: per view, one statement ranking every user of the batch who is
missing a rank there (`Store.view_ranks_of`), read after the whole batch committed, as the
index's ranks are. It runs in the group committer's worker, which every request of the batch
(and the next) waits for, so it is bounded as a whole by `SECONDS`, not by any request's
budget. A failure or a timeout leaves the ranks unknown (None) and is logged: each answer
then reads its own within its budget, and answers a rank it cannot read as null rather than
a 503 for an event that is durably committed (`ScoringService.answered`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from scoreboard.domain.boards import View
from scoreboard.store.base import EventRecord, Store

log = logging.getLogger(__name__)

SECONDS = 1.0  # every view's read of one batch together, at most


async def fill_from_store(
    store: Store,
    events: Sequence[EventRecord],
    ranks: list[list[int | None]],
    live: set[str],
) -> None:
    """Fill the None entries of `ranks` (per event, per `event.boards`) on the views in
    `live` from the store, one call per view, within `SECONDS`. Never raises."""
    wanted: dict[str, tuple[View, list[tuple[int, int]]]] = {}
    for i, event in enumerate(events):
        if event.hidden:
            continue  # a quarantined user's own rank is the answer's to read (as if visible)
        for j, on in enumerate(event.boards):
            if ranks[i][j] is None and on.view.key in live:
                wanted.setdefault(on.view.key, (on.view, []))[1].append((i, j))
    if not wanted:
        return
    try:
        async with asyncio.timeout(SECONDS):
            for key, (view, where) in wanted.items():
                users = sorted({events[i].user_id for i, _ in where})
                try:
                    found = await store.view_ranks_of(view, users)
                except Exception as exc:  # ServiceUnavailable: each answer asks for itself
                    log.warning("ranks of a batch on %s unknown (%r)", key, exc)
                    continue
                for i, j in where:
                    ranks[i][j] = found.get(events[i].user_id)
    except TimeoutError:
        log.warning("ranks of a batch not read within %.1f s; each answer asks", SECONDS)
