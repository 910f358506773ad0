"""Live message dialects of the other specifications (filled in by the compatibility work)."""

from __future__ import annotations

from scoreboard.realtime.dialects import Dialect

COMPAT_DIALECTS: list[Dialect] = []
