"""The SDK's own session tool runner completes custom-tool scenarios against the emulator."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
from anthropic.lib.tools import beta_async_tool
from anthropic.types.beta.sessions import BetaManagedAgentsUserMessageEventParams

from emulator import EmulatorConfig, EmulatorServer, FaultConfig
from tests.contract.session_support import history, make_session, scenario, types_of

CALLS: list[str] = []


@beta_async_tool
async def lookup_ticket(id: str) -> str:
    """Look up a ticket.

    Args:
        id: The ticket id.
    """
    CALLS.append(id)
    return f"ticket {id} is open"


async def _run_tools(async_client: anthropic.AsyncAnthropic, session_id: str) -> list[Any]:
    runner = async_client.beta.sessions.events.tool_runner(session_id, tools=[lookup_ticket], max_idle=0.5)
    return [call async for call in runner]


def _kickoff() -> BetaManagedAgentsUserMessageEventParams:
    # Paced events so the runner is attached (and dropped, under the fault) mid-turn.
    return scenario(
        custom_tools=[
            {"name": "lookup_ticket", "input": {"id": "T-1"}},
            {"name": "lookup_ticket", "input": {"id": "T-2"}},
        ],
        stream={"count": 10},
        delay=0.03,
    )


async def test_tool_runner_answers_custom_tools(
    async_client: anthropic.AsyncAnthropic, client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    CALLS.clear()
    session = make_session(client)
    await async_client.beta.sessions.events.send(session["id"], events=[_kickoff()])
    calls = await _run_tools(async_client, session["id"])
    assert sorted(c.tool_use_id for c in calls) == sorted(
        e["id"] for e in history(client, session["id"]) if e["type"] == "agent.custom_tool_use"
    )
    assert all(c.posted and not c.is_error for c in calls)
    assert sorted(CALLS) == ["T-1", "T-2"]
    events = history(client, session["id"])
    assert types_of(events)[-1] == "session.status_idle"
    assert events[-1]["stop_reason"] == {"type": "end_turn"}
    final = [e for e in events if e["type"] == "agent.message"][-1]["content"][0]["text"]
    assert "ticket T-1 is open" in final and "ticket T-2 is open" in final


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(faults=FaultConfig(drop_stream_after_events=3))])
async def test_tool_runner_survives_dropped_streams(
    async_client: anthropic.AsyncAnthropic, client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    CALLS.clear()
    session = make_session(client)
    await async_client.beta.sessions.events.send(session["id"], events=[_kickoff()])
    calls = await _run_tools(async_client, session["id"])
    # Each call ran exactly once although the stream broke every three events.
    assert sorted(CALLS) == ["T-1", "T-2"]
    assert len(calls) == 2 and all(c.posted for c in calls)
    events = history(client, session["id"])
    assert events[-1]["stop_reason"] == {"type": "end_turn"}
    assert types_of(events).count("user.custom_tool_result") == 2
    drops = [r for r in emulator.control.requests() if r["injected"] == "drop_stream"]
    assert len(drops) >= 2
