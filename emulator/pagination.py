"""Opaque ``page`` cursors over in-memory lists (``{"data", "next_page"}``)."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from .errors import ApiError


def encode_cursor(offset: int, order: str) -> str:
    """Return an opaque ``page_...`` cursor for ``offset`` under ``order``."""
    raw = json.dumps({"o": offset, "d": order}).encode()
    return "page_" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(page: str, order: str) -> int:
    """Decode a cursor; a cursor made under another ``order`` is a 400 (as the docs say)."""
    try:
        body = page.removeprefix("page_")
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        offset, made_for = int(data["o"]), str(data["d"])
    except Exception as exc:
        raise ApiError(400, f"Invalid page cursor {page!r}.") from exc
    if made_for != order:
        raise ApiError(400, "This page cursor was created with a different order.")
    return offset


def paginate(
    items: Sequence[Any],
    *,
    limit: int | None,
    page: str | None,
    default_limit: int = 20,
    max_limit: int = 100,
    order: str = "asc",
    prev_page: bool = False,
) -> dict[str, Any]:
    """Slice ``items`` (already filtered and ordered) into one page of the list envelope.

    Args:
        items: The full ordered result set.
        limit: Requested page size (``None`` means the endpoint's default).
        page: Cursor from a previous ``next_page``/``prev_page``.
        default_limit: Page size when ``limit`` is omitted.
        max_limit: Largest accepted ``limit``; above it is a 400.
        order: The order the cursor is bound to.
        prev_page: Include ``prev_page`` (only sessions list has it).
    """
    size = default_limit if limit is None else limit
    if size < 1 or size > max_limit:
        raise ApiError(400, f"limit must be between 1 and {max_limit}, got {size}.")
    start = decode_cursor(page, order) if page else 0
    chunk = list(items[start : start + size])
    end = start + len(chunk)
    out: dict[str, Any] = {
        "data": chunk,
        "next_page": encode_cursor(end, order) if end < len(items) else None,
    }
    if prev_page:
        out["prev_page"] = encode_cursor(max(0, start - size), order) if start > 0 else None
    return out
