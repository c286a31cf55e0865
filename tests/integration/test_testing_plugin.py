"""A user's project tests its own flow offline with the plugin the package installs.

The user's test runs in a fresh ``pytest`` process, in a folder of its own (none of this
suite's fixtures or settings), with Prefect's own ``prefect_test_harness``, as a user writes it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

USERS_SPEC = """\
name: users-report-writer
model: claude-opus-4-8
system: Write a short report.
tools:
  - type: agent_toolset_20260401
environment:
  name: users-env
  config:
    type: cloud
"""

USERS_TEST = """\
import pytest
from prefect.testing.utilities import prefect_test_harness

from flows.session import run_agent_session
from managed_agents.testing import scenario


@pytest.fixture(scope="session", autouse=True)
def prefect_server():
    with prefect_test_harness(server_startup_timeout=90):
        yield


def test_nightly_report(managed_agents_agent, managed_agents_emulator, tmp_path):
    block = managed_agents_agent("agent.yaml", "report-writer-prod")
    assert block.credentials.base_url == managed_agents_emulator.url
    result = run_agent_session(
        agent="report-writer-prod",
        prompt=scenario(reply="Done.", outputs=[{"name": "report.md", "size": 120}]),
        output_dir=str(tmp_path),
    )
    assert result.final_message == "Done."
    assert (tmp_path / "report.md").stat().st_size == 120
"""


def test_a_users_own_test_runs_its_flow_against_the_plugins_emulator(tmp_path: Path) -> None:
    (tmp_path / "agent.yaml").write_text(USERS_SPEC)
    (tmp_path / "test_users_flow.py").write_text(USERS_TEST)
    # A user's shell: no Prefect server, Anthropic or path settings of this suite (the default
    # roots: the working folder and ./outputs; the plugin adds pytest's temporary folder).
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "ANTHROPIC_", "MANAGED_AGENTS_INPUT", "MANAGED_AGENTS_OUTPUT"))
    }
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_users_flow.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "1 passed" in run.stdout
