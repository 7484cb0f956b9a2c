"""Figures measured over several rounds, and the tables run.py prints them in."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    """One quantity, measured once per round."""

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    @property
    def spread(self) -> float:
        """How far rounds stray from the median, relative to it: half the interquartile range
        (one stray round in a busy machine's run does not make the others doubtful), or half
        the whole range when there are too few rounds for quartiles."""
        if not self.median:
            return 0.0
        if len(self.values) < 4:
            return (self.high - self.low) / 2 / self.median
        first, _, third = statistics.quantiles(self.values, n=4)
        return (third - first) / 2 / self.median

    def ratio_to(self, baseline: Figure) -> Figure:
        """Round by round: variants take turns within a round, so a slow spell of the machine
        slows both sides of a ratio alike and cancels out of it."""
        return Figure(tuple(value / base for value, base in zip(self.values, baseline.values, strict=True)))


def number(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def with_range(figure: Figure, digits: int = 0) -> str:
    return f"{number(figure.median, digits)} [{number(figure.low, digits)}-{number(figure.high, digits)}]"


def ratio(figure: Figure) -> str:
    return f"{figure.median:.3f} [{figure.low:.2f}-{figure.high:.2f}]"


def added(figure: Figure, baseline: Figure, digits: int = 1) -> str:
    """How much more the median is than the baseline's, signed."""
    return f"{figure.median - baseline.median:+,.{digits}f}"


def change(factor: float) -> str:
    """A ratio as a change: 1.021 -> "+2.1%"."""
    return f"{(factor - 1) * 100:+.1f}%"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Aligned columns for the terminal: the first left-aligned, the others right-aligned."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        first, *rest = cells
        return (
            "  "
            + "  ".join([first.ljust(widths[0]), *(c.rjust(w) for c, w in zip(rest, widths[1:], strict=True))]).rstrip()
        )

    return "\n".join([line(headers), "  " + "-" * (sum(widths) + 2 * (len(widths) - 1)), *map(line, rows)])


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] + ["---:"] * (len(headers) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
