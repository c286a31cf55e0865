"""The SDK's own event types, named once: what the engine reads and what it sends.

Events read from the history are the SDK's typed union (every member has ``id``, ``type`` and
``processed_at``); the stream adds frames that are not events (``event_start``,
``event_delta``) and may carry what the union cannot say (a malformed frame, a type newer than
the SDK). :func:`stream_event` is the one place that looks at such a frame untyped.
"""

from __future__ import annotations

from typing import TypeAlias, cast

from anthropic.types.beta.sessions import (
    BetaManagedAgentsEventParams,
    BetaManagedAgentsSessionEvent,
    BetaManagedAgentsSessionEventType,
    BetaManagedAgentsUserMessageEventParams,
)

SessionEvent: TypeAlias = BetaManagedAgentsSessionEvent
"""An event of a session, as the history (and, once checked, the stream) delivers it."""
EventParam: TypeAlias = BetaManagedAgentsEventParams
"""An event we send (``user.message``, ``user.define_outcome``, a confirmation, a tool result...)."""

KICKOFF_TYPES: frozenset[BetaManagedAgentsSessionEventType] = frozenset(
    {"user.define_outcome", "user.message"}
)
"""The user events that start a turn."""
NOT_EVENTS = frozenset({"event_start", "event_delta", "ping"})
"""Stream frames that are not session events (incremental rendering, keep-alives)."""


class MalformedEventError(ValueError):
    """A stream frame without a type: nobody can tell what happened."""


def stream_event(frame: object) -> SessionEvent | None:
    """A stream frame as a session event; None for frames that are not events.

    Raises:
        MalformedEventError: The frame has no type.
    """
    kind = getattr(frame, "type", None)  # the wire may send what the SDK's union cannot say
    if kind in NOT_EVENTS:
        return None
    if not kind:
        raise MalformedEventError(f"an event without a type (id {getattr(frame, 'id', None)!r})")
    # The SDK builds a frame of an unknown type as some member of its union, with the fields it
    # lacks set to None: the engine reads ids and stop reasons with that in mind.
    return cast(SessionEvent, frame)


def user_message(prompt: str) -> BetaManagedAgentsUserMessageEventParams:
    """The ``user.message`` event that sends a text prompt."""
    return {"type": "user.message", "content": [{"type": "text", "text": prompt}]}
