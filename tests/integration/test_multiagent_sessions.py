"""Multi-agent sessions through the runtime flows and the JobRun, against the emulator's realistic
profile (real SDK, real HTTP) and a real local Prefect server.

A coordinator delegates to callees, each in its own session thread: the result and the report say
which agent did what (threads, tasks, replies, usage), the transcript shows the exchange, and
files a callee writes are collected like the coordinator's.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from blocks import AnthropicCredentials, ManagedAgent
from emulator import EmulatorServer
from flows.session import run_agent_session
from flows.setup import deploy_agent
from managed_agents_core.report import report_key
from managed_agents_core.results import SessionResult
from tests.conftest import TEST_API_KEY
from tests.integration.session_helpers import scenario

pytestmark = pytest.mark.usefixtures("prefect_harness")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def agent_spec(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "model": "claude-opus-4-8",
        "tools": [{"type": "agent_toolset_20260401"}],
        "environment": {"name": f"{name}-env"},
        **extra,
    }


@pytest.fixture
def team(emulator: EmulatorServer) -> tuple[ManagedAgent, str, str]:
    """A coordinator block whose callees are a researcher and a writer (deployed by block)."""
    creds = AnthropicCredentials(api_key=TEST_API_KEY, base_url=emulator.url)
    researcher, writer = unique("researcher"), unique("writer")
    for name in (researcher, writer):
        deploy_agent(agent_spec(name), name, credentials=creds)
    lead = deploy_agent(
        agent_spec(unique("lead"), multiagent={"agents": [{"block": researcher}, {"block": writer}]}),
        unique("lead"),
        credentials=creds,
    )
    return lead, researcher, writer


def delegation_prompt(researcher: str, writer: str) -> str:
    return scenario(
        reply="Both are done.",
        cost=2,
        delegate=[
            {
                "agent": researcher,
                "task": "Find the three largest customers.",
                "reply": "ACME, Globex, Initech.",
                "outputs": [{"name": "customers.csv", "size": 300, "seed": 1}],
                "cost": 3,
            },
            {"agent": writer, "task": "Write the summary.", "reply": "Summary written.", "cost": 4},
        ],
    )


def check_threads(result: SessionResult, lead: ManagedAgent, researcher: str, writer: str) -> None:
    primary, *children = result.threads
    assert primary.primary and primary.agent_name == lead.agent_name
    assert [(t.agent_name, t.tasks_sent, t.replies, t.status) for t in children] == [
        (researcher, 1, 1, "idle"),
        (writer, 1, 1, "idle"),
    ]
    assert all(t.usage is not None for t in result.threads)
    costs = {t.agent_name: t.usage.cost_usd for t in result.threads if t.usage}
    assert costs[researcher] == Decimal("0.03") and costs[writer] == Decimal("0.04")
    assert result.usage.cost_usd == sum((c for c in costs.values() if c is not None), Decimal(0))
    assert "ACME, Globex, Initech." in result.final_message or result.final_message.startswith("Both")


def latest_report(agent_name: str) -> str:
    with get_client(sync_client=True) as prefect:
        found = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[report_key(agent_name)]))
        )
    assert found
    return str(max(found, key=lambda a: a.created or 0).data)


def test_the_flow_shows_which_agent_did_what(
    emulator: EmulatorServer, team: tuple[ManagedAgent, str, str], tmp_path: Path
) -> None:
    lead, researcher, writer = team
    result = run_agent_session(
        lead, delegation_prompt(researcher, writer), output_dir=str(tmp_path / "out"), archive_when_done=True
    )

    check_threads(result, lead, researcher, writer)
    assert [f.filename for f in result.output_files] == ["customers.csv"]  # written by the researcher
    assert (tmp_path / "out" / "customers.csv").stat().st_size == 300
    report = latest_report(lead.agent_name)
    assert "## Agents" in report
    researcher_usage = result.threads[1].usage
    assert researcher_usage is not None
    tokens = f"{researcher_usage.input_tokens:,} / {researcher_usage.output_tokens:,}"
    assert f"| {researcher} | 1 task, 1 reply | idle (end_turn) | {tokens} | 0.03 |" in report
    assert f"{researcher} started (thread {result.threads[1].thread_id})" in report
    assert f"<b>Delegated</b>: to {researcher}: Find the three largest customers." in report
    assert f"<b>Reply</b>: from {writer}: Summary written." in report


async def test_the_job_run_returns_the_threads(
    emulator: EmulatorServer, team: tuple[ManagedAgent, str, str]
) -> None:
    lead, researcher, writer = team
    run = await lead.atrigger(delegation_prompt(researcher, writer))
    await run.await_for_completion()
    result = await run.afetch_result()
    check_threads(result, lead, researcher, writer)


def test_a_single_agent_session_lists_no_threads(
    emulator: EmulatorServer, team: tuple[ManagedAgent, str, str]
) -> None:
    lead, _, _ = team
    result = run_agent_session(lead, scenario(reply="Alone."))
    assert result.threads == []
    listed = [r for r in emulator.control.requests() if r["path"].endswith("/threads")]
    assert listed == []  # no extra request when no thread was seen
