"""Outcomes (user.define_outcome with a rubric) reported in the result and as an artifact."""

from __future__ import annotations

from pathlib import Path

import anthropic
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from emulator import EmulatorServer
from flows.session import run_agent_session
from managed_agents_core.outcome_spec import OutcomeSpec
from tests.conftest import TEST_API_KEY
from tests.integration.session_helpers import create_remote_agent, save_agent_block, scenario, settled

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def agent_name(emulator: EmulatorServer, client: anthropic.Anthropic, prefect_harness: None) -> str:
    return save_agent_block(create_remote_agent(client), emulator.url, TEST_API_KEY)


def test_outcome_is_sent_instead_of_the_prompt_and_its_grades_are_reported(
    agent_name: str, client: anthropic.Anthropic, tmp_outputs: Path
) -> None:
    outcome = OutcomeSpec(
        description=scenario(outcome={"iterations": 2, "result": "satisfied"}),
        rubric="- has a title\n- cites every input",
        max_iterations=5,
    )
    state = run_agent_session(
        agent_name, "Write the report.", output_dir=str(tmp_outputs), outcome=outcome, return_state=True
    )
    assert state.is_completed(), state.message
    result = state.result()
    assert result.stop_reason == "end_turn"

    # What the session itself recorded is what the result reports.
    session = settled(client).beta.sessions.retrieve(result.session_id)
    assert len(session.outcome_evaluations) == 1
    remote = session.outcome_evaluations[0]
    assert [(e.outcome_id, e.result, e.iteration, e.explanation) for e in result.outcome_evaluations] == [
        (remote.outcome_id, "satisfied", remote.iteration, remote.explanation)
    ]
    # One user.define_outcome and no user.message were sent.
    sent = list(
        settled(client).beta.sessions.events.list(
            result.session_id, types=["user.define_outcome", "user.message"]
        )
    )
    assert [e.type for e in sent] == ["user.define_outcome"]
    assert sent[0].rubric.content == "- has a title\n- cites every input"  # type: ignore[union-attr]
    assert sent[0].max_iterations == 5  # type: ignore[union-attr]

    with get_client(sync_client=True) as prefect_client:
        artifacts = prefect_client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    [report] = [a for a in artifacts if a.key and a.key.endswith("-session-report")]
    rows = [line for line in str(report.data).splitlines() if line.startswith(f"| {remote.outcome_id} |")]
    assert [line.split(" | ")[1:3] for line in rows] == [
        ["0", "needs_revision"],
        ["1", "satisfied"],
        [f"{remote.iteration} (final)", "satisfied"],
    ]


def test_an_outcome_that_runs_out_of_iterations_is_reported_not_hidden(
    agent_name: str, tmp_outputs: Path
) -> None:
    outcome = OutcomeSpec(
        description=scenario(outcome={"iterations": 5, "result": "satisfied"}),
        rubric="- done",
        max_iterations=2,
    )
    result = run_agent_session(agent_name, "Try.", output_dir=str(tmp_outputs), outcome=outcome)
    assert [e.result for e in result.outcome_evaluations] == ["max_iterations_reached"]


def test_outcome_spec_needs_exactly_one_rubric() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        OutcomeSpec(description="x")
    with pytest.raises(ValueError, match="exactly one"):
        OutcomeSpec(description="x", rubric="r", rubric_file_id="file_1")
    assert OutcomeSpec(description="x", rubric_file_id="file_1").event()["rubric"] == {
        "type": "file",
        "file_id": "file_1",
    }
