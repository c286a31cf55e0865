"""Custom tools as Python functions, run as Prefect task runs: emulator + real local Prefect server.

``lookup_ticket`` is registered with ``@custom_tool``, so a run names it the way a deployment's
form does; ``slow_lookup`` is passed as the function itself, the way Python callers do.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anthropic
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, TaskRunFilter, TaskRunFilterName

from emulator import EmulatorServer
from flows.session import run_agent_session
from managed_agents_core.custom_tools import custom_tool
from tests.conftest import TEST_API_KEY
from tests.integration.session_helpers import (
    create_remote_agent,
    eventually,
    save_agent_block,
    scenario,
    settled,
)

pytestmark = pytest.mark.usefixtures("prefect_harness")

CALLS: Counter[str] = Counter()
BARRIER = threading.Barrier(2, timeout=10)


@custom_tool
def lookup_ticket(id: str) -> str:
    """Look up a support ticket's status.

    Args:
        id: The ticket id, like T-1.
    """
    CALLS[id] += 1
    if id == "T-404":
        raise KeyError(f"ticket {id} does not exist")
    return f"{id} is open"


def slow_lookup(id: str) -> str:
    """Look up a ticket in a slow system; both pending calls must be in flight together.

    Args:
        id: The ticket id.
    """
    CALLS[id] += 1
    BARRIER.wait()  # raises BrokenBarrierError unless the other call runs at the same time
    time.sleep(0.5)
    return f"{id} found"


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    CALLS.clear()
    BARRIER.reset()


@pytest.fixture
def agent_name(emulator: EmulatorServer, client: anthropic.Anthropic, prefect_harness: None) -> str:
    return save_agent_block(create_remote_agent(client), emulator.url, TEST_API_KEY)


def _results_sent(client: anthropic.Anthropic, session_id: str) -> list[Any]:
    events = settled(client).beta.sessions.events.list(
        session_id, limit=1000, types=["user.custom_tool_result"]
    )
    return list(events)


async def _custom_tool_task_runs(flow_run_id: Any, count: int) -> list[Any]:
    """The flow run's custom tool task runs once ``count`` of them are recorded in a final state."""
    async with get_client() as prefect_client:

        async def read() -> list[Any] | None:
            runs = await prefect_client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                task_run_filter=TaskRunFilter(
                    name=TaskRunFilterName(like_="[")  # our runs are named "<tool> [<event id>]"
                ),
            )
            final = [r for r in runs if r.state is not None and r.state.is_final()]
            return runs if len(final) >= count else None

        return await eventually(read, f"{count} custom tool task runs in a final state")


def test_a_tool_that_succeeds_and_one_that_raises(
    agent_name: str, client: anthropic.Anthropic, tmp_outputs: Path
) -> None:
    prompt = scenario(
        custom_tools=[
            {"name": "lookup_ticket", "input": {"id": "T-1"}},
            {"name": "lookup_ticket", "input": {"id": "T-404"}},
        ]
    )
    state = run_agent_session(
        agent_name,
        prompt,
        output_dir=str(tmp_outputs),
        custom_tools=["lookup_ticket"],  # a registered tool's name, as a deployment's form sends it
        custom_tool_retries=1,
        return_state=True,
    )
    assert state.is_completed(), state.message
    result = state.result()
    assert result.stop_reason == "end_turn"
    assert "lookup_ticket returned: T-1 is open" in result.final_message
    assert "lookup_ticket failed:" in result.final_message and "KeyError" in result.final_message
    assert CALLS == {"T-1": 1, "T-404": 2}  # the failing call was retried once as a task run

    sent = _results_sent(client, result.session_id)
    assert len(sent) == 2
    by_error = {bool(e.is_error): e for e in sent}
    assert by_error[False].content[0].text == "T-1 is open"
    assert "does not exist" in by_error[True].content[0].text

    import asyncio

    runs = asyncio.run(_custom_tool_task_runs(state.state_details.flow_run_id, 2))
    states = sorted(r.state.name for r in runs)
    assert len(runs) == 2, [r.name for r in runs]
    assert states == ["Completed", "Failed"]
    assert all(r.name.startswith("lookup_ticket [sevt_") for r in runs)


def test_two_pending_calls_run_concurrently(
    agent_name: str, client: anthropic.Anthropic, tmp_outputs: Path
) -> None:
    prompt = scenario(
        custom_tools=[
            {"name": "slow_lookup", "input": {"id": "A"}},
            {"name": "slow_lookup", "input": {"id": "B"}},
        ]
    )
    result = run_agent_session(agent_name, prompt, output_dir=str(tmp_outputs), custom_tools=[slow_lookup])
    assert "slow_lookup returned: A found" in result.final_message
    assert "slow_lookup returned: B found" in result.final_message
    assert CALLS == {"A": 1, "B": 1}
    assert all(not e.is_error for e in _results_sent(client, result.session_id))


def test_dropped_streams_while_tools_run_dispatch_each_call_once(
    agent_name: str, emulator: EmulatorServer, client: anthropic.Anthropic, tmp_outputs: Path
) -> None:
    # Every SSE connection breaks after 3 events, so the stream is cut while the tools run
    # (they take 0.5 s) and the engine reconnects and backfills around them.
    emulator.control.set_faults(drop_stream_after_events=3)
    prompt = scenario(
        custom_tools=[
            {"name": "slow_lookup", "input": {"id": "C"}},
            {"name": "slow_lookup", "input": {"id": "D"}},
        ],
        stream={"count": 10, "delay": 0.01},
        reply="after tools",
    )
    result = run_agent_session(agent_name, prompt, output_dir=str(tmp_outputs), custom_tools=[slow_lookup])
    emulator.control.set_faults()
    assert result.stop_reason == "end_turn"
    assert "after tools" in result.final_message
    assert CALLS == {"C": 1, "D": 1}
    assert len(_results_sent(client, result.session_id)) == 2
    drops = [r for r in emulator.control.requests() if r.get("injected") == "drop_stream"]
    assert len(drops) >= 3
    history = [e.id for e in settled(client).beta.sessions.events.list(result.session_id, limit=1000)]
    assert result.event_count == len(history)


def test_without_a_function_for_the_tool_the_agent_gets_an_error_result(
    agent_name: str, client: anthropic.Anthropic, tmp_outputs: Path
) -> None:
    prompt = scenario(custom_tools=[{"name": "unknown_tool", "input": {}}])
    result = run_agent_session(agent_name, prompt, output_dir=str(tmp_outputs), custom_tools=[lookup_ticket])
    assert (
        "unknown_tool failed: No function is registered for custom tool 'unknown_tool'"
        in result.final_message
    )
    assert [e.is_error for e in _results_sent(client, result.session_id)] == [True]
