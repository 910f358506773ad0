"""The result table: one `Row` per path, printed as a Markdown table (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

HEADERS = ("path", "service", "baseline, same run", "ratio", "checks")


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table. `ratio` is service / baseline as the goal states it (None: —)."""

    path: str
    service: str
    baseline: str = "—"
    ratio: float | None = None
    checks: str = "—"

    @classmethod
    def failed(cls, path: str, error: BaseException | str) -> Row:
        """A row whose measurement raised: the figure says why instead of crashing the bench."""
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        return cls(path, f"FAILS: {one_line(text)}")


def one_line(text: str, width: int = 160) -> str:
    """Collapse whitespace and cut to `width` characters (table cells are one line)."""
    flat = " ".join(text.split()).replace("|", "/")
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def rate(value: float, unit: str) -> str:
    """`1,039 ev/s`, `34.2k req/s`: as the issue writes them."""
    if value >= 10_000:
        return f"{value / 1000:.1f}k {unit}"
    return f"{value:,.0f} {unit}"


def millis(seconds: float) -> str:
    """`84 ms`, `1.5 s`, `0.8 ms`."""
    if seconds >= 1.0:
        return f"{seconds:.1f} s"
    if seconds >= 0.01:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds * 1000:.1f} ms"


def signed(seconds: float) -> str:
    """`+5.0 ms`, `-1.2 ms`: a difference of times."""
    return ("-" if seconds < 0 else "+") + millis(abs(seconds))


def ratio(service: float, baseline: float) -> float | None:
    """service / baseline; None (printed —) when the baseline measured nothing."""
    return service / baseline if baseline > 0 else None


def ratio_cell(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio:.2f}"


def render(rows: Sequence[Row], title: str = "") -> str:
    """The whole table as Markdown, columns padded so it also reads well in a terminal."""
    cells = [HEADERS] + [
        (r.path, r.service, r.baseline, ratio_cell(r.ratio), r.checks) for r in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADERS))]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    out = [title] if title else []
    out.append(line(cells[0]))
    out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    out.extend(line(values) for values in cells[1:])
    return "\n".join(out)
