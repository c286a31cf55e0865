"""The one untyped look at a stream frame: frames that are not events, malformed ones, typed ones."""

from __future__ import annotations

import pytest
from anthropic._models import construct_type
from anthropic.types.beta.sessions import BetaManagedAgentsStreamSessionEvents

from managed_agents_core.events import MalformedEventError, stream_event, user_message


def frame(data: dict[str, object]) -> object:
    """A stream frame as the SDK builds it from the wire."""
    return construct_type(type_=BetaManagedAgentsStreamSessionEvents, value=data)


def test_frames_that_are_not_events_are_skipped() -> None:
    assert stream_event(frame({"type": "event_start"})) is None
    assert stream_event(frame({"type": "event_delta"})) is None


def test_a_frame_without_a_type_is_malformed() -> None:
    with pytest.raises(MalformedEventError, match="without a type"):
        stream_event(frame({"id": "sevt_1"}))


def test_an_event_is_handed_on_typed_and_an_unknown_type_passes_with_its_gaps() -> None:
    idle = stream_event(
        frame({"type": "session.status_idle", "id": "sevt_2", "stop_reason": {"type": "end_turn"}})
    )
    assert idle is not None and idle.type == "session.status_idle" and idle.id == "sevt_2"
    unknown = stream_event(frame({"type": "session.something_new"}))
    assert unknown is not None and unknown.id is None  # the engine never relies on it


def test_user_message_is_the_sdk_param() -> None:
    assert user_message("hi") == {"type": "user.message", "content": [{"type": "text", "text": "hi"}]}
