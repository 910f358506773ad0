"""Correctness checks printed beside the figures (pure functions of what the bench counted).

A figure is worth nothing if the service lost or double-counted work to get it, so every
throughput row carries one of these verdicts, and the bench's exit status reflects them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    text: str

    def cell(self) -> str:
        return ("ok: " if self.ok else "FAILED: ") + self.text


def check_ingest(
    acked_ids: Collection[int],
    stored_ids: Collection[int],
    score_sum: int,
    points: int,
    in_flight_bound: int,
) -> Verdict:
    """Every acknowledged event stored, none twice, and the totals equal the events' points.

    `acked_ids`: the event ids of the 2xx answers wrk saw; `stored_ids`: the ids in
    `score_events` for the bench's users afterwards; `score_sum`: the sum of their totals.
    Events may be committed but unanswered when wrk stops at its deadline (connections cut
    mid-request): at most one per open connection, `in_flight_bound` in all.
    """
    acked, stored = set(acked_ids), set(stored_ids)
    problems = [] if acked else ["no event acknowledged at all"]
    if len(acked) != len(acked_ids):
        problems.append(f"{len(acked_ids) - len(acked)} event ids acknowledged twice")
    if missing := len(acked - stored):
        problems.append(f"{missing} acknowledged events not stored")
    unanswered = len(stored - acked)
    if unanswered > in_flight_bound:
        problems.append(f"{unanswered} stored but unanswered (> {in_flight_bound} in flight)")
    if score_sum != points * len(stored):
        problems.append(f"sum of scores {score_sum} != {points} x {len(stored)} events")
    if unanswered:
        text = f"acked {len(acked)}, stored {len(stored)} ({unanswered} cut off in flight)"
    else:
        text = f"acked {len(acked)} = stored {len(stored)}"
    text += f" = sum/points {score_sum // points if points else 0}"
    return Verdict(not problems, "; ".join(problems) if problems else text)


def check_converged(last_items: Sequence[Any], board_items: Any, missed: int = 0) -> Verdict:
    """Every live client's last message shows the board `GET /api/v1/leaderboard` returns."""
    differing = sum(1 for items in last_items if items != board_items)
    if not last_items:
        return Verdict(False, "no client reported")
    if differing or missed:
        parts = [f"{differing}/{len(last_items)} clients' last message differs from GET"]
        if missed:
            parts.append(f"{missed} frames never arrived")
        return Verdict(False, "; ".join(parts))
    return Verdict(True, f"{len(last_items)}/{len(last_items)} clients converged")


def check_statuses(
    ok: int, bad: int, codes: Mapping[str, int] | None = None, what: str = "answers"
) -> Verdict:
    """A read row's wrk run: every answer 2xx (`codes`: the others by status, if any)."""
    if bad or not ok:
        by_status = ", ".join(f"{n}x {code}" for code, n in sorted((codes or {}).items()))
        return Verdict(
            False, f"{bad} non-2xx of {ok + bad} {what}" + (f" ({by_status})" if by_status else "")
        )
    return Verdict(True, f"{ok} {what} all 2xx")
