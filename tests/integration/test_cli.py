"""``managed-agents deploy | pin | sweep | sessions ...`` against the emulator and a real Prefect server.

The commands run in-process through Typer's runner (stdout and stderr apart, as a shell sees
them), with the credentials in the environment as a user's shell would have them.
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import pytest
from typer.testing import CliRunner, Result

from emulator import EmulatorServer
from flows.session import run_agent_session
from managed_agents.cli import app
from managed_agents.output import EXIT_BAD_INPUT, EXIT_NOT_FOUND, EXIT_UNREACHABLE
from tests.conftest import TEST_API_KEY
from tests.integration.session_helpers import (
    agent_block,
    create_remote_agent,
    save_agent_block,
    scenario,
    settled,
)

pytestmark = pytest.mark.usefixtures("prefect_harness")

SPEC = """\
name: cli-report-writer
description: {description}
model: claude-opus-4-8
system: Write a short report.
tools:
  - type: agent_toolset_20260401
environment:
  name: cli-env
  config:
    type: cloud
"""


def invoke(*args: str) -> Result:
    """Run ``managed-agents ARGS`` (a wide terminal, so table cells are not folded)."""
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr, result.exception)
    return result.stdout


def as_json(result: Result) -> Any:
    return json.loads(ok(result))


@pytest.fixture
def shell_credentials(emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", TEST_API_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", emulator.url)


def write_spec(folder: Path, description: str) -> Path:
    spec = folder / "agent.yaml"
    spec.write_text(SPEC.format(description=description))
    return spec


@pytest.mark.usefixtures("shell_credentials")
def test_deploy_then_list_show_read_and_archive_a_session(
    client: anthropic.Anthropic, tmp_path: Path
) -> None:
    block = f"cli-{uuid.uuid4().hex[:8]}"
    deployed = as_json(invoke("deploy", str(write_spec(tmp_path, "first")), "--block", block, "--json"))
    assert deployed["block"] == block and deployed["version"] == 1 and deployed["vault_ids"] == []
    result = run_agent_session(
        agent=block,
        prompt=scenario(reply="Report written.", outputs=[{"name": "report.md", "size": 40}]),
        output_dir=str(tmp_path / "out"),
    )
    sid = result.session_id
    settled(client)

    [listed] = as_json(invoke("sessions", "ls", "--agent", block, "--json"))
    assert listed["id"] == sid and listed["status"] == "idle" and listed["archived_at"] is None
    assert Decimal(listed["cost_usd"]) == result.usage.cost_usd
    assert listed["flow_run_id"] and listed["console_url"] == result.console_url
    table = ok(invoke("sessions", "ls", "--agent", block))
    assert sid in table and "idle" in table and f"${result.usage.cost_usd:.2f}" in table
    assert as_json(invoke("sessions", "ls", "--agent", block, "--status", "running", "--json")) == []

    shown = as_json(invoke("sessions", "show", sid, "--agent", block, "--json"))
    assert [(o["filename"], o["size_bytes"]) for o in shown["outputs"]] == [("report.md", 40)]
    assert shown["usage"]["output_tokens"] == result.usage.output_tokens > 0
    page = ok(invoke("sessions", "show", sid, "--agent", block))
    assert "report.md" in page and result.console_url in page and "list cost $" in page

    transcript = as_json(invoke("sessions", "transcript", sid, "--agent", block, "--json"))
    assert {"role": "agent", "text": "Report written."} in [
        {"role": e["role"], "text": e["text"]} for e in transcript
    ]
    assert "[agent] Report written." in ok(invoke("sessions", "transcript", sid, "--agent", block))

    assert as_json(invoke("sessions", "archive", sid, "--agent", block, "--json")) == {
        "id": sid,
        "outcome": "archived",
    }
    assert as_json(invoke("sessions", "ls", "--agent", block, "--json")) == []
    [archived] = as_json(invoke("sessions", "ls", "--agent", block, "--include-archived", "--json"))
    assert archived["id"] == sid and archived["archived_at"]


@pytest.mark.usefixtures("shell_credentials")
def test_pin_moves_the_block_between_versions_and_refuses_one_that_does_not_exist(tmp_path: Path) -> None:
    block = f"cli-{uuid.uuid4().hex[:8]}"
    ok(invoke("deploy", str(write_spec(tmp_path, "first")), "--block", block))
    second = as_json(invoke("deploy", str(write_spec(tmp_path, "second")), "--block", block, "--json"))
    assert second["version"] == 2

    assert as_json(invoke("pin", block, "1", "--json"))["version"] == 1
    assert "now pins agent cli-report-writer" in ok(invoke("pin", block, "2"))

    missing = invoke("pin", block, "9")
    assert missing.exit_code == EXIT_NOT_FOUND
    assert missing.stderr.startswith("error: AgentVersionNotFoundError: ") and missing.stdout == ""
    assert len(missing.stderr.strip().splitlines()) == 1  # one line, no traceback


@pytest.mark.usefixtures("shell_credentials")
def test_sweep_dry_run_names_the_orphan_and_the_sweep_archives_it(
    emulator: EmulatorServer, client: anthropic.Anthropic, tmp_path: Path
) -> None:
    block = save_agent_block(create_remote_agent(client), emulator.url, TEST_API_KEY)
    result = run_agent_session(agent=block, prompt=scenario(), output_dir=str(tmp_path / "out"))
    settled(client)

    dry = as_json(invoke("sweep", "--agent", block, "--grace", "0", "--dry-run", "--json"))
    assert dry["dry_run"] and [o["session_id"] for o in dry["orphans"]] == [result.session_id]
    assert client.beta.sessions.retrieve(result.session_id).archived_at is None

    swept = as_json(invoke("sweep", "--agent", block, "--grace", "0", "--json"))
    assert [(o["session_id"], o["outcome"]) for o in swept["orphans"]] == [(result.session_id, "archived")]
    assert settled(client).beta.sessions.retrieve(result.session_id).archived_at is not None


def test_errors_are_one_line_with_an_exit_code_that_says_what_kind(
    emulator: EmulatorServer, client: anthropic.Anthropic, tmp_path: Path
) -> None:
    mine = save_agent_block(create_remote_agent(client), emulator.url, TEST_API_KEY)
    theirs = save_agent_block(create_remote_agent(client), emulator.url, TEST_API_KEY)
    their_session = run_agent_session(agent=theirs, prompt=scenario(), output_dir=str(tmp_path / "out"))
    unreachable = f"cli-dead-{uuid.uuid4().hex[:8]}"
    dead = agent_block(create_remote_agent(client), "http://127.0.0.1:9", TEST_API_KEY)
    dead.save(unreachable, _sync=True)  # type: ignore[call-arg]

    cases = [
        (("sessions", "ls", "--agent", "no-such-block"), EXIT_BAD_INPUT, "BlockNotFoundError"),
        (
            ("sessions", "show", "sesn_011CNoSuchSession0000", "--agent", mine),
            EXIT_NOT_FOUND,
            "NotFoundError",
        ),
        (
            ("sessions", "archive", their_session.session_id, "--agent", mine),
            EXIT_NOT_FOUND,
            "SessionNotAttachableError",
        ),
        (("sessions", "ls", "--agent", unreachable), EXIT_UNREACHABLE, "ApiUnreachableError"),
    ]
    for args, code, kind in cases:
        failed = invoke(*args)
        assert failed.exit_code == code, (args, failed.exit_code, failed.stderr, failed.exception)
        assert failed.stderr.startswith(f"error: {kind}: "), failed.stderr
        assert len(failed.stderr.strip().splitlines()) == 1 and failed.stdout == "", failed.stderr
    assert "http://127.0.0.1:9" in invoke("sessions", "ls", "--agent", unreachable).stderr
    # The other agent's session was left alone.
    assert settled(client).beta.sessions.retrieve(their_session.session_id).archived_at is None
    bad_age = invoke("sessions", "ls", "--agent", mine, "--since", "3 weeks")
    assert bad_age.exit_code == EXIT_BAD_INPUT and "30m, 12h, 7d" in bad_age.stderr


@pytest.mark.usefixtures("shell_credentials")
def test_a_coordinator_is_deployed_with_its_callee_and_its_sessions_show_each_agent(tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    (tmp_path / "helper.yaml").write_text(
        SPEC.format(description="A callee.").replace("cli-report-writer", f"cli-helper-{suffix}")
    )
    lead = SPEC.format(description="A coordinator.").replace("cli-report-writer", f"cli-lead-{suffix}")
    (tmp_path / "lead.yaml").write_text(lead + "multiagent:\n  agents:\n    - spec: helper.yaml\n")
    block = f"cli-lead-{suffix}"
    deployed = as_json(invoke("deploy", str(tmp_path / "lead.yaml"), "--block", block, "--json"))
    assert deployed["version"] == 1
    result = run_agent_session(agent=block, prompt="Split this up.")
    [_, helper_thread] = result.threads

    shown = as_json(invoke("sessions", "show", result.session_id, "--agent", block, "--json"))
    assert [(t["agent_name"], t["primary"]) for t in shown["threads"]] == [
        (f"cli-lead-{suffix}", True),
        (f"cli-helper-{suffix}", False),
    ]
    page = ok(invoke("sessions", "show", result.session_id, "--agent", block))
    assert f"cli-lead-{suffix} (coordinator)" in page and helper_thread.thread_id in page
    transcript = ok(invoke("sessions", "transcript", result.session_id, "--agent", block))
    assert f"[delegated] to cli-helper-{suffix}: Split this up." in transcript
    assert f"[reply] from cli-helper-{suffix}: Done: Split this up." in transcript
