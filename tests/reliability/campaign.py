"""Campaign mode (short for CI, long by ``PMA_CAMPAIGN=long``) and the one-line-per-check report."""

from __future__ import annotations

import os
from typing import TypeVar

T = TypeVar("T")

MODE = "long" if os.environ.get("PMA_CAMPAIGN", "short").strip().lower() == "long" else "short"
"""``short`` (CI, a few minutes) unless ``PMA_CAMPAIGN=long``."""

LINES: list[str] = []
"""Summary lines of the checks that ran, printed at the end of the pytest run."""


def sized(short: T, long: T) -> T:
    """Pick the value for the current campaign mode."""
    return long if MODE == "long" else short


def record(check: str, **figures: object) -> str:
    """Add one summary line: the check's name and its figures (``key=value``), in order.

    Args:
        check: What was checked, e.g. ``dropped streams k=25``.
        figures: The check's figures.

    Returns:
        The line, so a test can also put it in an assertion message.
    """
    parts = [f"{key.replace('_', ' ')} {_fmt(value)}" for key, value in figures.items()]
    line = f"{check}: " + ", ".join(parts)
    LINES.append(line)
    return line


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)
