"""Tool approvals through Prefect's real pause/resume, answered through the Prefect API as the UI does."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterName,
)
from prefect.client.schemas.objects import FlowRun
from prefect.flow_runs import resume_flow_run

from emulator import EmulatorServer
from flows.approval_forms import MESSAGE_SUFFIX
from flows.session import run_agent_session
from managed_agents_core.exceptions import SessionRequiresActionError
from managed_agents_core.keys import run_session_id
from managed_agents_core.turn import ConfirmationPolicy
from tests.conftest import TEST_API_KEY
from tests.integration.session_helpers import create_remote_agent, save_agent_block, scenario, settled

pytestmark = pytest.mark.usefixtures("prefect_harness")

ASK = ConfirmationPolicy(default="ask", approval_timeout_seconds=120)
PROMPT = scenario(
    tools=[
        {"name": "bash", "input": {"command": "ls /data"}, "result": "a.csv"},
        {"name": "read", "input": {}},
    ],
    reply="checked",
)


@pytest.fixture
def agent_name(emulator: EmulatorServer, client: anthropic.Anthropic, prefect_harness: None) -> str:
    # bash is always_ask on the agent; read is always_allow.
    return save_agent_block(create_remote_agent(client, ask_tools=("bash",)), emulator.url, TEST_API_KEY)


class FlowThread(threading.Thread):
    """Runs the flow like a worker would, so the test can act as the person in the UI."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(daemon=True)
        self.run_name = f"approval-{uuid.uuid4().hex[:10]}"
        self.kwargs = kwargs
        self.state: Any = None

    def run(self) -> None:
        self.state = run_agent_session.with_options(flow_run_name=self.run_name)(
            return_state=True, **self.kwargs
        )


def _wait_for_paused_run(run_name: str, timeout: float = 180) -> FlowRun:
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as prefect_client:
        while time.monotonic() < deadline:
            runs = prefect_client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[run_name]))
            )
            if runs and runs[0].state is not None and runs[0].state.is_paused():
                return runs[0]
            time.sleep(0.3)
    raise AssertionError(f"flow run {run_name} never paused")


def _form(run: FlowRun, timeout: float = 30) -> dict[str, Any]:
    """What the UI shows: the run's input schema (with the pending calls as defaults) and description.

    Prefect sets the Paused state first and saves the form just after, so a reader that sees the
    state early waits for the form, as the UI does by polling.
    """
    assert run.state is not None
    keyset = run.state.state_details.run_input_keyset
    assert keyset is not None
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as prefect_client:
        while True:
            try:
                schema = prefect_client.read_flow_run_input(run.id, keyset["schema"])
                description = prefect_client.read_flow_run_input(run.id, keyset["description"])
                break
            except httpx.HTTPStatusError as error:
                if error.response.status_code != 404 or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    return {"schema": json.loads(schema), "description": json.loads(description)}


def _confirmations(client: anthropic.Anthropic, session_id: str) -> list[Any]:
    return list(
        settled(client).beta.sessions.events.list(session_id, limit=1000, types=["user.tool_confirmation"])
    )


@pytest.mark.parametrize(
    ("decision", "deny_message", "note"),
    [
        ("allow", None, "bash ran: a.csv"),
        ("deny", "Not on production data.", "bash denied: Not on production data."),
    ],
)
def test_a_person_approves_or_denies_through_pause_and_resume(
    agent_name: str,
    client: anthropic.Anthropic,
    tmp_outputs: Path,
    decision: str,
    deny_message: str | None,
    note: str,
) -> None:
    runner = FlowThread(agent=agent_name, prompt=PROMPT, output_dir=str(tmp_outputs), confirmation_policy=ASK)
    runner.start()
    run = _wait_for_paused_run(runner.run_name)

    form = _form(run)
    # One decision and one deny message per pending call; the call itself is shown, not editable.
    fields = form["schema"]["properties"]
    [event_id] = [name for name in fields if not name.endswith(MESSAGE_SUFFIX)]
    assert event_id.startswith("sevt_") and list(fields) == [event_id, event_id + MESSAGE_SUFFIX]
    decision_field, message_field = fields[event_id], fields[event_id + MESSAGE_SUFFIX]
    assert (decision_field["title"], decision_field["enum"], decision_field["default"]) == (
        "1. bash",
        ["allow", "deny"],
        "deny",
    )
    assert decision_field["description"] == 'Input: {"command": "ls /data"} (waits because: always_ask)'
    assert (message_field["type"], message_field["default"]) == ("string", "")  # no None toggle
    assert form["schema"]["required"] == [event_id]  # a decision per call; the message is optional
    heading = form["description"].splitlines()[0]
    assert "waits for 1 tool confirmation" in heading and "`" not in heading
    assert "| 1 | bash |" in form["description"]

    time.sleep(1.0)  # the session really waits: nothing was confirmed while paused
    session_id = str(run_session_id(run.tags, run.labels))
    assert _confirmations(client, session_id) == []
    assert settled(client).beta.sessions.retrieve(session_id).status == "idle"
    # What the run page shows while it waits: a progress bar short of 100% that says so, and a
    # report headed "Waiting for approval".
    with get_client(sync_client=True) as prefect:
        artifacts = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        )
    [progress] = [a for a in artifacts if a.type == "progress"]
    assert isinstance(progress.data, float) and progress.data < 100
    assert "waiting: a person's approval" in str(progress.description)
    [report] = [a for a in artifacts if a.type == "markdown"]
    assert ": Waiting for approval\n" in str(report.data)
    assert str(report.description).startswith("**Waiting for approval** · idle · list cost")

    resume_flow_run(run.id, run_input={event_id: decision, event_id + MESSAGE_SUFFIX: deny_message or ""})
    runner.join(timeout=180)
    assert runner.state is not None and runner.state.is_completed(), runner.state
    result = runner.state.result()
    assert note in result.final_message and result.final_message.startswith("checked")

    confirmations = _confirmations(client, session_id)
    assert len(confirmations) == 1  # sent exactly once
    sent = confirmations[0]
    assert (sent.tool_use_id, sent.result, sent.deny_message) == (event_id, decision, deny_message)
    # The kickoff message was sent once, across the pause.
    assert len(list(settled(client).beta.sessions.events.list(session_id, types=["user.message"]))) == 1


def test_no_answer_in_time_denies_by_default(
    agent_name: str, client: anthropic.Anthropic, tmp_outputs: Path
) -> None:
    policy = ConfirmationPolicy(default="ask", approval_timeout_seconds=3, on_timeout="deny")
    started = time.monotonic()
    result = run_agent_session(agent_name, PROMPT, output_dir=str(tmp_outputs), confirmation_policy=policy)
    assert time.monotonic() - started >= 3
    assert "bash denied: Denied: nobody approved this tool call in time." in result.final_message
    [sent] = _confirmations(client, result.session_id)
    assert sent.result == "deny"


def test_no_answer_in_time_fails_when_the_policy_says_fail(agent_name: str, tmp_outputs: Path) -> None:
    policy = ConfirmationPolicy(default="ask", approval_timeout_seconds=2, on_timeout="fail")
    state = run_agent_session(
        agent_name, PROMPT, output_dir=str(tmp_outputs), confirmation_policy=policy, return_state=True
    )
    assert state.is_failed()
    with pytest.raises(SessionRequiresActionError, match="Nobody approved or denied bash"):
        state.result()


def test_policy_rules_decide_before_asking(
    agent_name: str, client: anthropic.Anthropic, tmp_outputs: Path
) -> None:
    # ask is the default, but bash is on the allow list: no pause at all.
    policy = ConfirmationPolicy(
        default="ask", allow_tools=["bash"], approval_timeout_seconds=1, on_timeout="fail"
    )
    result = run_agent_session(agent_name, PROMPT, output_dir=str(tmp_outputs), confirmation_policy=policy)
    assert "bash ran: a.csv" in result.final_message
    assert [c.result for c in _confirmations(client, result.session_id)] == ["allow"]
