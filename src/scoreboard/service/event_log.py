"""The event log as admins and users read it (API.md section 6, "Audit log query";
docs/MODERATION.md "Audit log query and export").

- `page(query, limit, cursor)`: one page, newest first, with the opaque cursors of
  `service.paging` (shared with the admin audit log).
- `export(query, cursor)`: EVERY matching event (after `cursor`, when given), newest first,
  as chunks of at most `chunk_size` events: each chunk one short keyset read of its own
  (`Store.event_log` from where the last one ended), under a database budget of its own
  (`scoreboard.deadline`), so an export of any size takes constant memory, never holds a
  connection between chunks (a slow reader pins nothing), and its time waiting on the reader
  is not the database's. The first chunk is read by `export` itself, before anything is
  sent: bad input or a database that cannot be reached is a plain error answer, not a broken
  stream.
- `mine(user_id, limit, cursor)`: a user's own events; `user_source` says who wrote each in
  the words a user is told (`user`, `server`, `admin`: never which key or which admin).

Rules (decisions): `since` and `until` are ISO-8601 instants with a time zone (`Z` or an
offset; a time without one is refused, not guessed), `since` inclusive, `until` exclusive,
`since` after `until` refused; `action_type` matches exactly and is not checked against the
catalogue (the log keeps types the catalogue may no longer have, and `ADJUSTMENT`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime

from scoreboard.deadline import request_budget
from scoreboard.domain.errors import ValidationFailed
from scoreboard.service.paging import decode_cursor, keyset_page
from scoreboard.store.base import Store
from scoreboard.store.event_log import EventQuery, LoggedEvent

DEFAULT_CHUNK = 1000
USER_SOURCES = {"apikey": "server", "admin": "admin"}


@dataclass(frozen=True, slots=True)
class EventPage:
    items: list[LoggedEvent]
    next_cursor: str | None


def user_source(source: str) -> str:
    """`apikey:NAME` → `server`, `admin:USER` → `admin`, anything else (`user`) → `user`."""
    kind, sep, _ = source.partition(":")
    return USER_SOURCES.get(kind, "user") if sep else "user"


def parse_instant(field: str, text: str | None) -> datetime | None:
    """An ISO-8601 instant with a time zone (`2026-12-01T00:00:00Z`, `...+01:00`); None for
    None; `ValidationFailed` naming `field` otherwise."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ValidationFailed(
            f"{field} must be an ISO-8601 date and time with a time zone, "
            "e.g. 2026-12-01T00:00:00Z.",
            details={"field": field},
        )
    return moment


def event_query(
    user_id: str | None = None,
    action_type: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> EventQuery:
    """The query of the admin route's filters, checked (see the module's rules)."""
    start, end = parse_instant("since", since), parse_instant("until", until)
    if start is not None and end is not None and start > end:
        raise ValidationFailed("since must not be after until.", details={"field": "since"})
    return EventQuery(user_id=user_id, action_type=action_type, since=start, until=end)


class EventLogService:
    def __init__(self, store: Store, *, chunk_size: int = DEFAULT_CHUNK, budget: float) -> None:
        """`chunk_size`: events per read of an export. `budget`: each chunk's database time
        bound (`SCOREBOARD_DB_TIMEOUT_SECONDS`, as a request's)."""
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        self._store = store
        self.chunk_size = chunk_size
        self._budget = budget

    async def page(self, query: EventQuery, limit: int, cursor: str | None = None) -> EventPage:
        """Newest first; `limit` 1-100, `cursor` from a previous page's `next_cursor`."""
        items, next_cursor = await keyset_page(
            lambda count, before: self._store.event_log(query, count, before),
            lambda e: e.event_id,
            limit,
            cursor,
        )
        return EventPage(items, next_cursor)

    async def mine(self, user_id: str, limit: int, cursor: str | None = None) -> EventPage:
        """The user's own events, newest first, each `source` as a user is told it
        (`user_source`). A quarantined user sees theirs like anyone (they are not told)."""
        page = await self.page(EventQuery(user_id=user_id), limit, cursor)
        items = [replace(e, source=user_source(e.source)) for e in page.items]
        return EventPage(items, page.next_cursor)

    async def export(
        self, query: EventQuery, cursor: str | None = None
    ) -> AsyncIterator[list[LoggedEvent]]:
        """Every event matching `query` (older than `cursor`'s, when given: the rest after a
        page), newest first, in chunks (module doc). Reads the first chunk now (its errors
        are raised here); the iterator reads the rest."""
        before = None if cursor is None else decode_cursor(cursor)
        first = await self._store.event_log(query, self.chunk_size, before)
        return self._chunks(query, first)

    async def _chunks(
        self, query: EventQuery, chunk: list[LoggedEvent]
    ) -> AsyncIterator[list[LoggedEvent]]:
        while chunk:
            yield chunk
            if len(chunk) < self.chunk_size:
                return
            with request_budget(self._budget):
                chunk = await self._store.event_log(query, self.chunk_size, chunk[-1].event_id)
