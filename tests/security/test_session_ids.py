"""A ``session_id`` parameter reaches only the block's own agent's sessions (docs/security.md).

Before: ``continue_agent_session`` sent its message to whatever session the parameter named,
with the block's credentials, so a deployment run could talk to (and now raise the budget of)
another agent's session in the same workspace. Now the follow-up, like a re-attach, first checks
that the session was started from the block's agent and is live: otherwise a typed error, and
nothing is written.
"""

from __future__ import annotations

from decimal import Decimal

import anthropic
import pytest

from emulator import EmulatorServer
from flows.follow_up import acontinue_agent_session
from flows.session import arun_agent_session
from managed_agents_core.exceptions import SessionNotAttachableError
from tests.integration.session_helpers import create_remote_agent, scenario, start_session

from .helpers import run_as_deployment, state_error, writes

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.mark.parametrize("flow", ["follow-up", "re-attach"])
def test_a_session_of_another_agent_is_refused_before_any_write(
    flow: str, saved_agent: str, client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    others = start_session(client, create_remote_agent(client))
    emulator.control.clear_requests()
    if flow == "follow-up":
        parameters = {
            "agent": saved_agent,
            "session_id": others,
            "prompt": scenario(reply="hello"),
            "budget_usd": Decimal("5"),
        }
        state = run_as_deployment(acontinue_agent_session, parameters)
    else:
        state = run_as_deployment(
            arun_agent_session, {"agent": saved_agent, "session_id": others, "prompt": scenario(reply="hi")}
        )
    assert state.is_failed()
    error = state_error(state)
    assert isinstance(error, SessionNotAttachableError)
    assert "belongs to agent" in str(error) and others in str(error)
    assert [w for w in writes(emulator) if others in w["path"]] == []
    session = client.beta.sessions.retrieve(others)
    assert session.budget is None
