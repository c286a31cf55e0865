"""The SSE stream as it is on the wire, and as the SDK's Stream parses it."""

from __future__ import annotations

import time

import anthropic
import httpx
import pytest

from emulator import EmulatorConfig, EmulatorServer
from tests.contract.session_support import (
    HEADERS,
    STREAM_EVENT,
    ends_turn,
    make_session,
    message,
    raw_stream,
    run_turn,
    scenario,
    send,
    types_of,
)

STREAMED_TURN = [
    "user.message",
    "session.status_running",
    "user.message",
    "span.model_request_start",
    "agent.thinking",
    "agent.message",
    "span.model_request_end",
    "session.usage",
    "session.status_idle",
]


def test_every_frame_is_named_after_its_type(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    session = make_session(client)
    with raw_stream(emulator.url, session["id"]) as stream:
        send(client, session["id"], message("hello"))
        events = stream.until_turn_ends()
        assert types_of(events) == STREAMED_TURN
        # RawStream.events() already checked `event:` == data.type and validated each frame.
        assert all(name == __import__("json").loads(data)["type"] for name, data in stream.frames)


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(ping_interval=0.1)])
def test_pings_keep_an_idle_stream_alive(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    session = make_session(client)
    with raw_stream(emulator.url, session["id"]) as stream:
        frames = [stream.next_frame() for _ in range(3)]
    assert frames == [("ping", "{}")] * 3


def test_stream_only_carries_events_after_it_opened(
    client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    session = make_session(client)
    first = run_turn(client, emulator.url, session["id"], message("first"))
    second = run_turn(client, emulator.url, session["id"], message("second"))
    assert not {e["id"] for e in first} & {e["id"] for e in second}
    assert types_of(second) == STREAMED_TURN
    assert second[0]["content"][0]["text"] == "second"


def test_event_deltas_preview_only_on_streams_that_ask(
    client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    session = make_session(client)
    with (
        raw_stream(emulator.url, session["id"], ["agent.message", "agent.thinking"]) as previews,
        raw_stream(emulator.url, session["id"]) as plain,
    ):
        send(client, session["id"], scenario(reply="A reply long enough to be split into deltas."))
        with_previews = previews.until_turn_ends()
        without = plain.until_turn_ends()
    assert types_of(without) == STREAMED_TURN
    kinds = types_of(with_previews)
    start = kinds.index("span.model_request_start")
    assert kinds[start + 1 : start + 3] == ["event_start", "agent.thinking"]
    thinking_start, thinking = with_previews[start + 1], with_previews[start + 2]
    assert thinking_start["event"] == {"type": "agent.thinking", "id": thinking["id"]}
    message_start = kinds.index("event_start", start + 2)
    final = kinds.index("agent.message")
    deltas = with_previews[message_start + 1 : final]
    assert deltas and all(d["type"] == "event_delta" for d in deltas)
    buffered = with_previews[final]
    assert with_previews[message_start]["event"] == {"type": "agent.message", "id": buffered["id"]}
    assert all(d["event_id"] == buffered["id"] for d in deltas)
    assert "".join(d["delta"]["content"]["text"] for d in deltas) == buffered["content"][0]["text"]
    assert kinds[final + 1] == "span.model_request_end"
    assert "event_start" not in types_of(
        client_history := [e.to_dict() for e in client.beta.sessions.events.list(session["id"])]
    )
    assert len(client_history) == len(without) - 1


def test_only_message_and_thinking_deltas_are_accepted(
    client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    session = make_session(client)
    with pytest.raises(anthropic.BadRequestError, match="event_deltas"):
        client.beta.sessions.events.stream(session["id"], event_deltas=["agent.tool_use"])  # type: ignore[list-item]
    response = httpx.get(
        f"{emulator.url}/v1/sessions/{session['id']}/events/stream",
        params={"event_deltas[]": "session.status_idle"},
        headers=HEADERS,
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_sdk_stream_parses_every_event(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    session = make_session(client)
    seen = []
    with client.beta.sessions.events.stream(session["id"], event_deltas=["agent.message"]) as stream:
        send(client, session["id"], scenario(tools=[{"name": "read", "input": {"path": "/x"}}]))
        for event in stream:
            data = event.to_dict()
            STREAM_EVENT.validate_python(data)
            seen.append(data)
            if ends_turn(data):
                break
    kinds = types_of(seen)
    assert "event_delta" in kinds
    assert kinds.index("agent.tool_use") < kinds.index("agent.tool_result") < kinds.index("agent.message")


async def test_async_sdk_stream(async_client: anthropic.AsyncAnthropic, client: anthropic.Anthropic) -> None:
    session = make_session(client)
    seen = []
    stream = await async_client.beta.sessions.events.stream(session["id"])
    async with stream:
        await async_client.beta.sessions.events.send(session["id"], events=[message("async")])
        async for event in stream:
            data = event.to_dict()
            STREAM_EVENT.validate_python(data)
            seen.append(data)
            if ends_turn(data):
                break
    assert types_of(seen) == STREAMED_TURN


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(close_stream_on_idle=True)])
def test_close_stream_on_idle_option(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    session = make_session(client)
    with raw_stream(emulator.url, session["id"]) as stream:
        send(client, session["id"], message("hello"))
        events = stream.until_turn_ends()
        with pytest.raises(EOFError):
            stream.next_frame()
    assert events[-1]["type"] == "session.status_idle"


def test_deleting_a_session_ends_its_streams(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    session = make_session(client)
    with raw_stream(emulator.url, session["id"]) as stream:
        client.beta.sessions.delete(session["id"])
        (event,) = list(stream.events())
    assert event["type"] == "session.deleted"


def test_twenty_thousand_events_stream_and_list_quickly(
    client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    session = make_session(client)
    started = time.monotonic()
    events = run_turn(client, emulator.url, session["id"], scenario(stream={"count": 20_000}, thinking=False))
    streamed = time.monotonic() - started
    chunks = [e for e in events if e["type"] == "agent.message"]
    assert len(chunks) == 20_001
    assert chunks[0]["content"][0]["text"] == "chunk 1/20000"
    listed = sum(1 for _ in client.beta.sessions.events.list(session["id"], types=["agent.message"]))
    assert listed == 20_001
    assert streamed < 30, f"20,000 events took {streamed:.1f}s"
