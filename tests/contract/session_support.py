"""Helpers shared by the session contract tests: objects, raw SSE reading, strict checks."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anthropic
import httpx
from anthropic.types.beta import BetaManagedAgentsSession
from anthropic.types.beta.sessions import (
    BetaManagedAgentsSessionEvent,
    BetaManagedAgentsStreamSessionEvents,
    BetaManagedAgentsUserMessageEventParams,
)
from pydantic import TypeAdapter

from emulator import scenario_prompt
from tests.conftest import TEST_API_KEY
from tests.contract.strict import body_of, strict

BETA = "managed-agents-2026-04-01"
HEADERS = {"x-api-key": TEST_API_KEY, "anthropic-beta": BETA}
EVENT = TypeAdapter(BetaManagedAgentsSessionEvent)
STREAM_EVENT = TypeAdapter(BetaManagedAgentsStreamSessionEvents)
TERMINAL_TYPES = ("session.status_terminated", "session.deleted")


def make_agent(client: anthropic.Anthropic, **overrides: Any) -> Any:
    """Create an agent through the SDK (with the built-in toolset and one custom tool)."""
    params: dict[str, Any] = {
        "name": "contract-agent",
        "model": "claude-opus-4-8",
        "system": "You are a test agent.",
        "tools": [
            {"type": "agent_toolset_20260401"},
            {
                "type": "custom",
                "name": "lookup_ticket",
                "description": "Look up a ticket",
                "input_schema": {"type": "object", "properties": {"id": {"type": "string"}}},
            },
        ],
    }
    params.update(overrides)
    return client.beta.agents.create(**params)


def make_environment(client: anthropic.Anthropic, name: str | None = None) -> Any:
    """Create a cloud environment (unique name) through the SDK."""
    name = name or f"contract-env-{uuid.uuid4().hex[:8]}"
    return client.beta.environments.create(
        name=name, config={"type": "cloud", "networking": {"type": "unrestricted"}}
    )


def make_session(client: anthropic.Anthropic, **params: Any) -> dict[str, Any]:
    """Create agent, environment and session; return the strictly validated raw session body."""
    agent = params.pop("agent", None) or make_agent(client).id
    env = params.pop("environment_id", None) or make_environment(client).id
    raw = client.beta.sessions.with_raw_response.create(agent=agent, environment_id=env, **params)
    body: dict[str, Any] = body_of(raw)
    strict(BetaManagedAgentsSession, body)
    return body


def message(text: str) -> BetaManagedAgentsUserMessageEventParams:
    """A ``user.message`` event param."""
    return {"type": "user.message", "content": [{"type": "text", "text": text}]}


def scenario(**keys: Any) -> BetaManagedAgentsUserMessageEventParams:
    """A test-mode ``user.message`` (``#emulator {json}``)."""
    return message(scenario_prompt(**keys))


def ends_turn(event: dict[str, Any]) -> bool:
    """The SDK runner's rule: idle with any stop reason but requires_action, or terminated."""
    if event["type"] in TERMINAL_TYPES:
        return True
    return bool(event["type"] == "session.status_idle" and event["stop_reason"]["type"] != "requires_action")


class RawStream:
    """An SSE connection read frame by frame with httpx, exactly as it was on the wire."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.iter_lines()
        self.frames: list[tuple[str | None, str]] = []

    def next_frame(self) -> tuple[str | None, str]:
        """Return the next ``(event name, data)`` frame."""
        name: str | None = None
        data: list[str] = []
        for line in self.lines:
            if line == "":
                if name is None and not data:
                    continue
                frame = (name, "\n".join(data))
                self.frames.append(frame)
                return frame
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        raise EOFError("stream ended")

    def events(self, *, pings: bool = False) -> Iterator[dict[str, Any]]:
        """Yield the JSON of each frame (until the stream ends), checking ``event:`` == ``type``."""
        while True:
            try:
                name, data = self.next_frame()
            except EOFError:
                return
            assert name is not None, "every frame must carry an event: line"
            if name == "ping":
                if pings:
                    yield {"type": "ping"}
                continue
            event = json.loads(data)
            assert event["type"] == name
            STREAM_EVENT.validate_python(event)
            yield event

    def until_turn_ends(self) -> list[dict[str, Any]]:
        """Collect streamed events up to and including the one that ends the turn."""
        out = []
        for event in self.events():
            out.append(event)
            if ends_turn(event):
                return out
        raise EOFError(f"stream ended before the turn did: {[e['type'] for e in out]}")


@contextmanager
def raw_stream(base_url: str, session_id: str, deltas: list[str] | None = None) -> Iterator[RawStream]:
    """Open the session's SSE stream with httpx (headers received before this yields)."""
    params: list[tuple[str, str | int | float | bool | None]] = [("event_deltas[]", d) for d in deltas or []]
    with (
        httpx.Client(base_url=base_url, headers=HEADERS, timeout=httpx.Timeout(30.0)) as http,
        http.stream("GET", f"/v1/sessions/{session_id}/events/stream", params=params) as response,
    ):
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield RawStream(response)


def history(client: anthropic.Anthropic, session_id: str, **params: Any) -> list[dict[str, Any]]:
    """Every listed event (all pages), each strictly validated."""
    events: list[dict[str, Any]] = []
    page: str | None = None
    while True:
        query = dict(params)
        if page:
            query["page"] = page
        body = body_of(client.beta.sessions.events.with_raw_response.list(session_id, **query))
        for event in body["data"]:
            EVENT.validate_python(event)
        events.extend(body["data"])
        page = body["next_page"]
        if not page:
            return events


def send(client: anthropic.Anthropic, session_id: str, *events: Any) -> list[dict[str, Any]]:
    """Send events; return the strictly validated echoes."""
    from anthropic.types.beta.sessions import BetaManagedAgentsSendSessionEvents

    body = body_of(client.beta.sessions.events.with_raw_response.send(session_id, events=list(events)))
    strict(BetaManagedAgentsSendSessionEvents, body)
    return list(body["data"])


def run_turn(
    client: anthropic.Anthropic, base_url: str, session_id: str, *events: Any
) -> list[dict[str, Any]]:
    """Open the stream, send, and return the streamed events up to the end of the turn."""
    with raw_stream(base_url, session_id) as stream:
        send(client, session_id, *events)
        return stream.until_turn_ends()


def types_of(events: list[dict[str, Any]]) -> list[str]:
    """The ``type`` of each event."""
    return [e["type"] for e in events]
