"""What the browser test looks at, made as a user would: ``python -m tests.ui.scenario MODE``.

``runs``: deploy the agent (its credentials saved as their own block), run one session with a
tool call and output files, a coordinator's session that delegates to a callee, and a batch of
two items; print their ids as JSON.
``paused``: run one session whose bash call waits for a person (the process stays paused until
the test resumes or kills it).

The emulator's URL and key come from ``UI_TEST_BASE_URL`` / ``UI_TEST_API_KEY``, the Prefect
server from ``PREFECT_API_URL``; outputs go to ``UI_TEST_OUTPUTS``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from pydantic import SecretStr

from blocks.credentials import AnthropicCredentials
from emulator import scenario_prompt
from flows.batch import run_agent_batch
from flows.session import run_agent_session
from flows.setup import deploy_agent

BLOCK = "ui-report-writer"
SPEC: dict[str, Any] = {
    "name": "ui-report-writer",
    "model": "claude-opus-4-8",
    "system": "Write short reports.",
    "tools": [{"type": "agent_toolset_20260401"}],
    "vaults": ["ui-secrets"],
    "environment": {"name": "ui-env", "config": {"type": "cloud"}},
}


def prompt(**keys: Any) -> str:
    """A scripted turn of the emulator's test agent."""
    return scenario_prompt(**keys)


def runs() -> dict[str, Any]:
    """Deploy, one session, one batch; the ids the test opens."""
    credentials = AnthropicCredentials(
        api_key=SecretStr(os.environ["UI_TEST_API_KEY"]), base_url=os.environ["UI_TEST_BASE_URL"]
    )
    with credentials.get_client() as client:  # the vault the spec names, as a team would have made it
        client.beta.vaults.create(display_name="ui-secrets")
    agent = deploy_agent(SPEC, BLOCK, credentials=credentials)
    outputs = os.environ["UI_TEST_OUTPUTS"]
    session = run_agent_session(
        BLOCK,
        prompt(
            tools=[{"name": "bash", "input": {"command": "ls -la /data"}, "permission": "always_allow"}],
            reply="Wrote the quarterly summary. " * 4,
            outputs=[{"name": "summary.md", "size": 2000}, {"name": "tables/by-region.csv", "size": 30000}],
        ),
        output_dir=f"{outputs}/session",
        return_state=True,
    )
    deploy_agent({**SPEC, "name": "ui-researcher", "vaults": []}, "ui-researcher", credentials=credentials)
    lead_spec = {**SPEC, "name": "ui-research-lead", "multiagent": {"agents": [{"block": "ui-researcher"}]}}
    deploy_agent(lead_spec, "ui-research-lead", credentials=credentials)
    team = run_agent_session(
        "ui-research-lead",
        prompt(
            reply="The brief is ready.",
            delegate=[
                {
                    "agent": "ui-researcher",
                    "task": "Find the three largest customers by revenue.",
                    "reply": "ACME, Globex and Initech.",
                    "outputs": [{"name": "customers.csv", "size": 400}],
                }
            ],
        ),
        output_dir=f"{outputs}/team",
        return_state=True,
    )
    batch = run_agent_batch(
        BLOCK,
        [
            {"key": "north", "prompt": prompt(reply="North is up.")},
            {"key": "south", "prompt": prompt(reply="South.")},
        ],
        output_dir=f"{outputs}/batch",
        return_state=True,
    )
    return {
        "agent_id": agent.agent_id,
        "block_document_id": str(agent._block_document_id),
        "vault_id": agent.vault_ids[0],
        "session_run_id": str(session.state_details.flow_run_id),
        "session_id": session.result().session_id,
        "batch_run_id": str(batch.state_details.flow_run_id),
        "team_run_id": str(team.state_details.flow_run_id),
    }


def paused() -> None:
    """A session whose bash call waits for a person, in a run that pauses for the form."""
    run_agent_session(
        BLOCK,
        prompt(
            tools=[{"name": "bash", "input": {"command": "rm -rf /data/tmp"}, "permission": "always_ask"}],
            reply="done",
        ),
        output_dir=f"{os.environ['UI_TEST_OUTPUTS']}/paused",
        confirmation_policy={"default": "ask", "approval_timeout_seconds": 600, "approval_mode": "pause"},
    )


if __name__ == "__main__":
    if sys.argv[1] == "runs":
        print(json.dumps(runs()))
    else:
        paused()
