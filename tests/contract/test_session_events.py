"""Session events: send (echoes), list (pages, order, filters) through the real SDK."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
from anthropic.types.beta.sessions import BetaManagedAgentsSendSessionEvents

from emulator import EmulatorServer
from tests.contract.session_support import (
    EVENT,
    history,
    make_session,
    message,
    raw_stream,
    run_turn,
    scenario,
    send,
    types_of,
)
from tests.contract.strict import body_of, strict

TURN = [
    "session.status_running",
    "user.message",
    "span.model_request_start",
    "agent.thinking",
    "agent.message",
    "span.model_request_end",
    "session.usage",
    "session.status_idle",
]


def test_send_echoes_with_server_ids(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    session = make_session(client)
    with raw_stream(emulator.url, session["id"]) as stream:
        echoes = send(client, session["id"], message("one"), message("two"))
        assert [e["type"] for e in echoes] == ["user.message", "user.message"]
        assert all(e["id"].startswith("sevt_") and e["processed_at"] is None for e in echoes)
        assert echoes[0]["content"] == [{"type": "text", "text": "one"}]
        events = stream.until_turn_ends() + stream.until_turn_ends()
    # The queued second message waits for the first turn, then runs as its own turn.
    user = [e for e in events if e["type"] == "user.message"]
    assert [(e["id"], e["processed_at"] is None) for e in user] == [
        (echoes[0]["id"], True),
        (echoes[1]["id"], True),
        (echoes[0]["id"], False),
        (echoes[1]["id"], False),
    ]
    listed = history(client, session["id"])
    # History is in processing order: each message sits where it was processed.
    assert types_of(listed) == TURN + TURN
    assert [e["id"] for e in listed if e["type"] == "user.message"] == [echoes[0]["id"], echoes[1]["id"]]
    assert all(e["processed_at"] is not None for e in listed)


def test_send_every_user_event_type(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    session = make_session(client)
    with raw_stream(emulator.url, session["id"]) as stream:
        send(
            client,
            session["id"],
            scenario(
                tools=[{"name": "bash", "input": {"command": "ls"}, "permission": "always_ask"}],
                custom_tools=[{"name": "lookup_ticket", "input": {"id": "T-1"}}],
            ),
        )
        events: list[dict[str, Any]] = []
        for event in stream.events():
            events.append(event)
            if event["type"] == "session.status_idle":
                break
        ask = next(e for e in events if e["type"] == "agent.tool_use")
        custom = next(e for e in events if e["type"] == "agent.custom_tool_use")
        raw = client.beta.sessions.events.with_raw_response.send(
            session["id"],
            events=[
                {
                    "type": "user.tool_confirmation",
                    "tool_use_id": ask["id"],
                    "result": "deny",
                    "deny_message": "no",
                },
                {
                    "type": "user.custom_tool_result",
                    "custom_tool_use_id": custom["id"],
                    "content": [{"type": "text", "text": "open"}],
                    "is_error": False,
                },
            ],
        )
        body = body_of(raw)
        strict(BetaManagedAgentsSendSessionEvents, body)
        confirmation, result = body["data"]
        assert confirmation["tool_use_id"] == ask["id"] and confirmation["deny_message"] == "no"
        assert result["custom_tool_use_id"] == custom["id"] and result["content"][0]["text"] == "open"
        stream.until_turn_ends()
        outcome = send(
            client,
            session["id"],
            {
                "type": "user.define_outcome",
                "description": "Write report.md",
                "rubric": {"type": "text", "content": "- has a title"},
                "max_iterations": 2,
            },
        )[0]
        assert outcome["outcome_id"].startswith("outc_")
        assert outcome["rubric"] == {"type": "text", "content": "- has a title"}
        stream.until_turn_ends()
        interrupt = send(client, session["id"], {"type": "user.interrupt"})[0]
        assert interrupt["type"] == "user.interrupt"
    for event in history(client, session["id"]):
        EVENT.validate_python(event)


def test_list_pages_order_types_and_time_filters(
    client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    session = make_session(client)
    # Timestamps have millisecond resolution: spaced messages keep the time filters below
    # meaningful on a machine fast enough to emit the whole turn within one millisecond.
    run_turn(client, emulator.url, session["id"], scenario(stream={"count": 30, "delay": 0.002}))
    everything = history(client, session["id"])
    assert len(everything) == 8 + 30

    first = body_of(client.beta.sessions.events.with_raw_response.list(session["id"], limit=10))
    assert [e["id"] for e in first["data"]] == [e["id"] for e in everything[:10]]
    assert first["next_page"] and "prev_page" not in first
    paged = [e.id for e in client.beta.sessions.events.list(session["id"], limit=7)]
    assert paged == [e["id"] for e in everything]

    newest = body_of(client.beta.sessions.events.with_raw_response.list(session["id"], order="desc", limit=3))
    assert [e["id"] for e in newest["data"]] == [e["id"] for e in everything[::-1][:3]]

    messages = history(client, session["id"], types=["agent.message", "session.status_idle"])
    assert set(types_of(messages)) == {"agent.message", "session.status_idle"}
    assert len(messages) == 31 + 1

    pivot = everything[10]["processed_at"]
    later = history(client, session["id"], created_at_gt=pivot)
    assert later and [e["id"] for e in later] == [e["id"] for e in everything if e["processed_at"] > pivot]
    upto = history(client, session["id"], created_at_lte=pivot)
    assert len(upto) + len(later) == len(everything)


def test_send_to_archived_or_terminated_is_409(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    archived = make_session(client)
    client.beta.sessions.archive(archived["id"])
    with pytest.raises(anthropic.ConflictError, match="archived"):
        client.beta.sessions.events.send(archived["id"], events=[message("hi")])

    terminated = make_session(client)
    events = run_turn(client, emulator.url, terminated["id"], scenario(stop="terminated"))
    assert events[-1]["type"] == "session.status_terminated"
    assert client.beta.sessions.retrieve(terminated["id"]).status == "terminated"
    with pytest.raises(anthropic.ConflictError, match="terminated") as exc:
        client.beta.sessions.events.send(terminated["id"], events=[message("hi")])
    assert exc.value.response.headers["x-should-retry"] == "false"


async def test_async_send_and_list(
    async_client: anthropic.AsyncAnthropic, client: anthropic.Anthropic
) -> None:
    session = make_session(client)
    sent = await async_client.beta.sessions.events.with_raw_response.send(
        session["id"], events=[message("hello")]
    )
    body: dict[str, Any] = body_of(sent)
    strict(BetaManagedAgentsSendSessionEvents, body)
    listed = [e.id async for e in async_client.beta.sessions.events.list(session["id"])]
    assert body["data"][0]["id"] in listed
