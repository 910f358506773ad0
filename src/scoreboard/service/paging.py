"""Opaque cursors, the one owner of their encoding: every admin page that walks an id-ordered
log newest first (`GET /api/v1/admin/audit`, `GET /api/v1/admin/events`,
`GET /api/v1/users/me/events`) hands out and takes back these.

A cursor is the base64url (unpadded) of the last id of the page it ends. Ids only grow, so a
cursor stays valid whatever is appended after it was handed out; what is appended meanwhile
shows on the first page only. Only what `encode_cursor` makes decodes: anything else is 400
`VALIDATION_FAILED` naming the field `cursor`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import TypeVar

from scoreboard.domain.errors import ValidationFailed

T = TypeVar("T")

# Pages of the admin logs: `limit` 1..MAX_LIMIT, DEFAULT_LIMIT when not given.
MAX_LIMIT = 100
DEFAULT_LIMIT = 50


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(str(last_id).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The id a cursor names; `ValidationFailed` for anything `encode_cursor` did not make."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not text.isdigit() or len(text) > 19 or encode_cursor(int(text)) != cursor:
        raise ValidationFailed(
            "cursor is not one this API handed out.", details={"field": "cursor"}
        )
    return int(text)


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(f"limit must be 1 to {MAX_LIMIT}.", details={"field": "limit"})
    return limit


async def keyset_page(
    fetch: Callable[[int, int | None], Awaitable[list[T]]],
    last_id: Callable[[T], int],
    limit: int,
    cursor: str | None,
) -> tuple[list[T], str | None]:
    """One page newest first: `fetch(count, before_id)` asked for one row more than `limit`,
    which tells whether there is a next page without a second query; the page and the cursor
    of the next one (None: the last page)."""
    check_limit(limit)
    before = None if cursor is None else decode_cursor(cursor)
    rows = await fetch(limit + 1, before)
    items = rows[:limit]
    more = len(rows) > limit
    return items, encode_cursor(last_id(items[-1])) if more else None
