"""Helpers shared by list endpoints: ``created_at[gte|lte]`` range filters."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from .errors import ApiError
from .ids import parse_ts


def parse_bound(value: str | None, name: str = "created_at") -> datetime | None:
    """Parse an optional RFC 3339 query bound; 400 when it is not a timestamp."""
    if value is None:
        return None
    try:
        moment = parse_ts(value)
    except ValueError as exc:
        raise ApiError(400, f"{name}: invalid RFC 3339 timestamp {value!r}.") from exc
    if moment.tzinfo is None:
        raise ApiError(400, f"{name}: timestamp {value!r} needs a time zone.")
    return moment


def created_between(
    items: Iterable[dict[str, Any]], gte: str | None, lte: str | None
) -> list[dict[str, Any]]:
    """Keep the items whose ``created_at`` lies in ``[gte, lte]`` (either bound optional)."""
    low = parse_bound(gte, "created_at[gte]")
    high = parse_bound(lte, "created_at[lte]")
    out = []
    for item in items:
        created = parse_ts(item["created_at"])
        if (low is None or created >= low) and (high is None or created <= high):
            out.append(item)
    return out
