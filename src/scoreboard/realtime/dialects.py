"""Live message formats ("dialects"). Each turns a board state into the text frames sent.

A dialect is a small object passed to the hub; the hub encodes each change once per dialect
(and per visible limit) and sends the same bytes to every socket that speaks it. Dialects whose
messages are diffs (per-entry update/remove) get the previous state as well as the new one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import orjson

from scoreboard.domain.ranking import RankedEntry

Items = Sequence[RankedEntry]


class Dialect(Protocol):
    name: str

    async def prepare(self, items: Items) -> None:
        """Called by the hub once per pass (a fan-out, a resync, a new client), before it
        encodes `items` for anyone: fetch what the messages need beyond the board, cached.
        Must not raise. Most dialects need nothing (`BoardOnly`)."""
        ...

    def snapshot(self, limit: int, items: Items, generated_at: str) -> list[str]:
        """Messages that give a newly (re)connected client the whole visible board."""
        ...

    def update(self, limit: int, previous: Items, items: Items, generated_at: str) -> list[str]:
        """Messages that move a client from `previous` to `items` (never called when equal)."""
        ...


def _items(items: Items) -> list[dict[str, object]]:
    return [entry.as_dict() for entry in items]


class BoardOnly:
    """Base of the dialects that encode from the board's entries alone."""

    async def prepare(self, items: Items) -> None:
        return None


class CanonicalDialect(BoardOnly):
    """`snapshot` then full-state `update` messages (API.md sections 2 and 5), each tagged
    with what `head()` returns at encoding time (the board: scope, period, next reset)."""

    name = "canonical"

    def __init__(self, head: Callable[[], dict[str, object]] | None = None) -> None:
        self._head = head

    def tagged(self, head: Callable[[], dict[str, object]]) -> CanonicalDialect:
        """This dialect for one board: every message carries `head()`."""
        return type(self)(head)

    def _tag(self) -> dict[str, object]:
        return {} if self._head is None else self._head()

    def snapshot(self, limit: int, items: Items, generated_at: str) -> list[str]:
        message = {
            "type": "snapshot",
            **self._tag(),
            "limit": limit,
            "items": _items(items),
            "generated_at": generated_at,
        }
        return [orjson.dumps(message).decode()]

    def update(self, limit: int, previous: Items, items: Items, generated_at: str) -> list[str]:
        message = {
            "type": "update",
            **self._tag(),
            "items": _items(items),
            "generated_at": generated_at,
        }
        return [orjson.dumps(message).decode()]


class DialectRegistry:
    """The dialects a deployment speaks, looked up by the `format` query parameter."""

    def __init__(self, dialects: Sequence[Dialect], default: str = "canonical") -> None:
        self._by_name = {d.name: d for d in dialects}
        self.default = self._by_name[default]

    def get(self, name: str | None) -> Dialect | None:
        if name is None:
            return self.default
        return self._by_name.get(name)

    def names(self) -> list[str]:
        return sorted(self._by_name)
