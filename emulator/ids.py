"""Identifiers and timestamps in the shapes the real service uses."""

from __future__ import annotations

import secrets
import string
from datetime import UTC, datetime

_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


def new_id(prefix: str) -> str:
    """Return an opaque id such as ``sesn_011CZkZAtmR3yMPDzynEDxu7`` (prefix + 24 base62 chars)."""
    return f"{prefix}_011C" + "".join(secrets.choice(_BASE62) for _ in range(20))


def now_iso() -> str:
    """Return the current UTC time as RFC 3339 with milliseconds and a ``Z`` suffix."""
    return format_ts(datetime.now(UTC))


def format_ts(moment: datetime) -> str:
    """Format an aware datetime as RFC 3339 UTC with milliseconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_ts(value: str) -> datetime:
    """Parse an RFC 3339 timestamp (``Z`` or offset form) into an aware datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
