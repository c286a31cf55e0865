"""Figures of a benchmark run: medians, ratios against targets, a printed table and JSON."""

from __future__ import annotations

import json
import platform
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def median(values: Sequence[float]) -> float:
    """Median of the values (NaN when empty)."""
    return statistics.median(values) if values else float("nan")


@dataclass
class Row:
    """One line of the table: a metric, both sides, their ratio and the target it is held to.

    Attributes:
        scenario: Scenario name.
        metric: What is measured, with its unit.
        raw: The raw SDK's median (None when the metric has no raw side).
        ours: Our median.
        target: The target in words, e.g. ``ratio <= 1.10``.
        met: Whether the target is met (None when the row has no target).
        ratio: ours / raw when both sides exist.
        note: Anything the reader needs to judge the figure.
    """

    scenario: str
    metric: str
    raw: float | None
    ours: float | None
    target: str = ""
    met: bool | None = None
    ratio: float | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.ratio is None and self.raw and self.ours is not None:
            self.ratio = self.ours / self.raw


def ratio_row(
    scenario: str,
    metric: str,
    raw: float,
    ours: float,
    *,
    limit: float | None = None,
    at_least: float | None = None,
    ratio: float | None = None,
    note: str = "",
) -> Row:
    """A row whose target bounds the ratio ours/raw (``limit``: at most; ``at_least``: at least).

    ``ratio`` replaces ``ours / raw`` when the ratio is measured another way (e.g. paired runs).
    """
    row = Row(scenario, metric, raw, ours, ratio=ratio, note=note)
    if limit is not None and row.ratio is not None:
        row.target, row.met = f"ratio <= {limit:.2f}", row.ratio <= limit
    elif at_least is not None and row.ratio is not None:
        row.target, row.met = f"ratio >= {at_least:.2f}", row.ratio >= at_least
    return row


def bound_row(
    scenario: str,
    metric: str,
    raw: float | None,
    ours: float,
    *,
    at_most: float,
    note: str = "",
) -> Row:
    """A row whose target bounds our absolute figure."""
    return Row(scenario, metric, raw, ours, target=f"<= {at_most:g}", met=ours <= at_most, note=note)


@dataclass
class Report:
    """Everything one run produced."""

    mode: str
    machine: str
    rows: list[Row] = field(default_factory=list)
    samples: dict[str, Any] = field(default_factory=dict)
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def add(self, *rows: Row) -> None:
        """Append rows."""
        self.rows.extend(rows)

    def to_json(self) -> dict[str, Any]:
        """The JSON document (rows plus every raw sample)."""
        return {
            "mode": self.mode,
            "machine": self.machine,
            "python": platform.python_version(),
            "started_at": self.started_at,
            "rows": [asdict(r) for r in self.rows],
            "samples": self.samples,
        }

    def write_json(self, path: Path) -> None:
        """Write the JSON document to ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2, default=str) + "\n")

    def table(self) -> str:
        """The rows as a Markdown table."""
        header = ["scenario", "metric", "raw SDK", "ours", "ours/raw", "target", "met"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for r in self.rows:
            met = "" if r.met is None else ("yes" if r.met else "**no**")
            cells = [r.scenario, r.metric, _num(r.raw), _num(r.ours), _num(r.ratio, 2), r.target, met]
            lines.append("| " + " | ".join(cells) + " |")
        notes = [f"- {r.scenario} / {r.metric}: {r.note}" for r in self.rows if r.note]
        return "\n".join(lines + (["", *notes] if notes else []))


def _num(value: float | None, digits: int | None = None) -> str:
    if value is None:
        return "-"
    if digits is not None:
        return f"{value:.{digits}f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"


def medians(samples: Sequence[dict[str, Any]], key: str) -> float:
    """Median of one figure over samples."""
    return median([float(s[key]) for s in samples])


def pick(samples: Sequence[dict[str, Any]], key: str, how: Callable[[Sequence[float]], float] = max) -> float:
    """Aggregate one figure over samples (``max`` by default, for peaks)."""
    return how([float(s[key]) for s in samples])
