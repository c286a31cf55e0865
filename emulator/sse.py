"""Server-sent-event frames as the SDK parses them (reference §7.2).

Every frame carries an ``event:`` line (the SDK silently drops frames without one) whose
name is the event's ``type``; heartbeats are ``event: ping`` frames, which the SDK skips.
"""

from __future__ import annotations

import json
from typing import Any

PING_FRAME = b"event: ping\ndata: {}\n\n"
"""The heartbeat frame sent every ``config.ping_interval`` seconds."""

FRAME_SEPARATOR = b"\n\n"


def encode_frame(event: dict[str, Any]) -> bytes:
    """Serialise one event as an SSE frame named after its ``type``."""
    data = json.dumps(event, separators=(",", ":"))
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + data.encode() + FRAME_SEPARATOR


def is_ping(frame: bytes) -> bool:
    """Return True for a heartbeat frame (fault injection does not count those as events)."""
    return frame.startswith(b"event: ping\n")
