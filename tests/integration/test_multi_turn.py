"""Follow-up turns on an existing session: emulator + real local Prefect server."""

from __future__ import annotations

from pathlib import Path

import anthropic
import pytest

from emulator import EmulatorServer
from flows.follow_up import acontinue_agent_session, continue_agent_session
from flows.session import run_agent_session
from managed_agents_core.keys import run_session_id
from tests.conftest import TEST_API_KEY
from tests.integration.session_helpers import create_remote_agent, save_agent_block, scenario, settled

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def agent_name(emulator: EmulatorServer, client: anthropic.Anthropic, prefect_harness: None) -> str:
    return save_agent_block(create_remote_agent(client), emulator.url, TEST_API_KEY)


def _user_messages(client: anthropic.Anthropic, session_id: str) -> list[str]:
    events = settled(client).beta.sessions.events.list(session_id, limit=1000, types=["user.message"])
    return [e.content[0].text for e in events]  # type: ignore[union-attr,index]


def test_a_follow_up_turn_sees_the_first_turns_state(
    agent_name: str, client: anthropic.Anthropic, emulator: EmulatorServer, tmp_path: Path
) -> None:
    first = run_agent_session(agent_name, scenario(remember="blue", reply="noted"), output_dir=str(tmp_path))
    assert first.final_message.startswith("noted")

    state = continue_agent_session(
        agent_name, first.session_id, scenario(recall=True, reply="second", delay=0.05), return_state=True
    )
    assert state.is_completed(), state.message
    second = state.result()
    assert second.session_id == first.session_id
    assert second.stop_reason == "end_turn"
    # The previous turn's idle is in the history; only this turn's end ends this run.
    assert second.final_message == "second Remembered: blue."
    assert second.event_count > first.event_count
    assert len(_user_messages(client, first.session_id)) == 2  # the follow-up was sent once
    history = [e.id for e in settled(client).beta.sessions.events.list(first.session_id, limit=1000)]
    assert second.event_count == len(history)

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as prefect_client:
        flow_run_id = state.state_details.flow_run_id
        assert flow_run_id is not None
        run = prefect_client.read_flow_run(flow_run_id)
    assert run_session_id(run.tags, run.labels) == first.session_id  # the cancel hooks can find it
    assert run.name.startswith(f"{agent_name} follow-up: ")
    assert state.message == second.summary()


async def test_async_follow_up_with_a_dropped_stream_and_a_custom_tool(
    agent_name: str, client: anthropic.Anthropic, emulator: EmulatorServer, tmp_path: Path
) -> None:
    from tests.unit.test_custom_tool_schema import lookup_ticket

    first = run_agent_session(agent_name, scenario(reply="one"), output_dir=str(tmp_path))
    emulator.control.set_faults(drop_stream_after_events=2)
    second = await acontinue_agent_session(
        agent_name,
        first.session_id,
        scenario(custom_tools=[{"name": "lookup_ticket", "input": {"ticket_id": "T-9"}}], reply="two"),
        custom_tools=[lookup_ticket],
    )
    emulator.control.set_faults()
    assert second.final_message == "two lookup_ticket returned: T-9: open"
    assert [
        e.type
        for e in settled(client).beta.sessions.events.list(
            first.session_id, types=["user.custom_tool_result"]
        )
    ] == ["user.custom_tool_result"]
    assert len(_user_messages(client, first.session_id)) == 2


def test_a_follow_up_whose_send_is_committed_then_dropped_starts_one_turn(
    agent_name: str, client: anthropic.Anthropic, emulator: EmulatorServer, tmp_path: Path
) -> None:
    first = run_agent_session(agent_name, scenario(reply="one"), output_dir=str(tmp_path))
    emulator.control.set_faults(commit_then_drop=[f"POST /v1/sessions/{first.session_id}/events"])
    second = continue_agent_session(agent_name, first.session_id, scenario(reply="two"))
    emulator.control.set_faults()
    assert second.final_message == "two"
    assert len(_user_messages(client, first.session_id)) == 2
