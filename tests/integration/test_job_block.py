"""ManagedAgent.trigger() -> JobRun: wait_for_completion() and fetch_result() against the emulator."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import cast

import anthropic
import pytest
from prefect import flow

from blocks.agent import ManagedAgent, ManagedAgentSessionRun
from blocks.credentials import AnthropicCredentials
from emulator import EmulatorServer
from managed_agents_core.exceptions import SessionRefusedError
from managed_agents_core.results import SessionResult
from managed_agents_core.turn import ConfirmationPolicy
from tests.conftest import TEST_API_KEY
from tests.integration.session_helpers import create_remote_agent, history_ids, scenario, settled


@pytest.fixture
def agent_block(emulator: EmulatorServer, client: anthropic.Anthropic) -> ManagedAgent:
    remote = create_remote_agent(client, ask_tools=("bash",))
    return ManagedAgent(
        credentials=AnthropicCredentials(api_key=TEST_API_KEY, base_url=emulator.url),
        agent_id=remote.agent_id,
        version=remote.version,
        environment_id=remote.environment_id,
        agent_name="engine-test",
        log_verbosity="full",
    )


def test_sync_trigger_wait_fetch(agent_block: ManagedAgent, client: anthropic.Anthropic) -> None:
    run = cast(
        ManagedAgentSessionRun,
        agent_block.trigger(scenario(reply="job done", stream={"count": 20}), title="job block test"),
    )
    assert isinstance(run, ManagedAgentSessionRun)
    session = settled(client).beta.sessions.retrieve(run.session_id)
    assert session.agent.version == agent_block.version  # pinned
    assert session.title == "job block test"
    assert (
        settled(client).beta.sessions.events.list(run.session_id).data == []
    )  # nothing sent before the stream opens

    run.wait_for_completion()
    result = cast(SessionResult, run.fetch_result())

    assert result.session_id == run.session_id
    assert (result.agent_id, result.agent_version) == (agent_block.agent_id, agent_block.version)
    assert (result.status, result.stop_reason) == ("idle", "end_turn")
    assert result.final_message == "job done"
    assert result.event_count == len(history_ids(client, run.session_id))
    assert result.usage.output_tokens > 0 and result.usage.cost_usd is not None
    assert result.console_url.endswith(run.session_id)


async def test_async_trigger_wait_fetch_with_policy(agent_block: ManagedAgent) -> None:
    run = await agent_block.atrigger(
        scenario(tools=[{"name": "bash", "input": {"command": "ls"}}]),
        policy=ConfirmationPolicy(allow_tools=["bash"]),
    )
    # async_dispatch: in an event loop the sync names return the async twins' coroutines.
    await cast(Awaitable[None], run.wait_for_completion())
    result = await cast(Awaitable[SessionResult], run.fetch_result())
    assert "bash ran: ok" in result.final_message
    assert result.stop_reason == "end_turn"


def test_failed_session_raises_typed_error_and_archive_is_idempotent(
    agent_block: ManagedAgent, client: anthropic.Anthropic
) -> None:
    run = cast(
        ManagedAgentSessionRun, agent_block.trigger(scenario(stop="refusal", refusal_category="cyber"))
    )
    with pytest.raises(SessionRefusedError) as info:
        run.wait_for_completion()
    assert info.value.session_id == run.session_id
    assert "category=cyber" in str(info.value)
    with pytest.raises(SessionRefusedError):
        run.fetch_result()
    assert run.archive() == "archived"
    assert run.archive() == "already-archived"
    assert settled(client).beta.sessions.retrieve(run.session_id).archived_at is not None


@pytest.mark.usefixtures("prefect_harness")
def test_job_run_inside_a_flow(agent_block: ManagedAgent) -> None:
    @flow
    def trigger_and_wait(agent: ManagedAgent) -> str:
        run = cast(ManagedAgentSessionRun, agent.trigger(scenario(reply="from a flow")))
        run.wait_for_completion()
        return cast(SessionResult, run.fetch_result()).final_message

    assert trigger_and_wait(agent_block) == "from a flow"
