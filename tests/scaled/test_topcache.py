"""`TopCache`: freshness, invalidation races, the last known top, and pre-encoded bytes that
equal what the canonical route would encode."""

from __future__ import annotations

import orjson

from scoreboard.api.schemas import EntryOut, LeaderboardOut, PeriodOut
from scoreboard.domain.ranking import RankedEntry
from scoreboard.domain.times import rfc3339
from scoreboard.service.topcache import TopCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def entries(n: int) -> list[RankedEntry]:
    return [RankedEntry(i + 1, f"u{i}", f"Ünï {i}", 100 - i) for i in range(n)]


def test_fresh_until_invalidated_then_last_known() -> None:
    cache = TopCache(max_age=5)
    generation = cache.generation("global")
    stored = cache.put("global", 10, entries(10), 30, generation=generation)
    assert cache.fresh("global", 10) is stored
    assert cache.fresh("global", 5) is stored and stored.slice(5) == entries(5)
    assert cache.fresh("global", 10, offset=5) is None  # ranks 6..15: not all cached
    assert cache.fresh("weekly", 10) is None
    cache.invalidate("weekly")
    assert cache.fresh("global", 10) is stored  # another scope changed
    cache.invalidate("global")
    assert cache.fresh("global", 10) is None
    assert cache.last_known("global", 10) is stored  # kept for when nothing else answers
    cache.put("global", 10, entries(10), 30, generation=cache.generation("global"))
    cache.invalidate()
    assert cache.fresh("global", 10) is None


def test_a_read_overtaken_by_a_change_is_not_fresh() -> None:
    cache = TopCache(max_age=5)
    generation = cache.generation("global")  # a read of the index starts...
    cache.invalidate("global")  # ...a change lands meanwhile...
    stale = cache.put("global", 10, entries(3), 3, generation=generation)  # ...read ends
    assert not stale.fresh and cache.fresh("global", 10) is None
    assert cache.last_known("global", 10) is stale


def test_entries_expire_and_complete_boards_answer_any_page() -> None:
    clock = Clock()
    cache = TopCache(max_age=2, clock=clock)
    board = cache.put("global", 100, entries(4), 4, generation=cache.generation("global"))
    assert board.complete and cache.fresh("global", 10, offset=2) is board
    assert board.slice(10, 2) == entries(4)[2:]
    clock.now += 2.5
    assert cache.fresh("global", 10) is None
    assert cache.last_known("global", 10, offset=50) is board


def test_database_reads_are_never_fresh_but_are_remembered() -> None:
    cache = TopCache()
    from_sql = cache.put(
        "global", 10, entries(2), 2, generation=cache.generation("global"), fresh=False
    )
    assert cache.fresh("global", 10) is None and cache.last_known("global", 10) is from_sql


def test_page_json_is_the_canonical_body() -> None:
    cache = TopCache()
    cached = cache.put("global:all:", 10, entries(7), 7, generation=0)
    period = {"id": "all", "starts_at": None, "ends_at": None}
    head = {"scope": "global", "period": period, "next_reset_at": None}
    expected = LeaderboardOut(
        scope="global",
        period=PeriodOut(**period),
        next_reset_at=None,
        limit=10,
        offset=0,
        total=7,
        items=[EntryOut(**e.as_dict()) for e in entries(7)],
        generated_at=rfc3339(cached.generated_at),
    )
    assert cached.page_json(head=orjson.dumps(head)) == expected.model_dump_json().encode()
    assert cached.items_json == orjson.dumps([e.as_dict() for e in entries(7)])
    smaller = orjson.loads(cached.page_json(3))
    assert smaller["limit"] == 3 and smaller["items"] == [e.as_dict() for e in entries(3)]
