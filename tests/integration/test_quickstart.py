"""The quickstart, run as a new user runs it, leaves blocks that keep working.

``managed-agents quickstart`` runs in its own process (its own emulator, this session's Prefect
server). Afterwards the agent block references a separate, saved credentials block (what the UI
shows and edits), and, with the emulator started again on the printed port and state file, a
session through the saved block completes: the quickstart leaves no dead block behind.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL

from blocks.agent import ManagedAgent, is_saved_block
from blocks.credentials import AnthropicCredentials
from emulator import EmulatorConfig, EmulatorServer, free_port
from flows.session import run_agent_session
from flows.setup import credentials_block_name
from tests.prefect_server import PROJECT_ROOT

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_the_quickstart_leaves_a_working_agent_block_with_its_own_credentials_block(tmp_path: Path) -> None:
    block_name = f"quickstart-{uuid.uuid4().hex[:8]}"
    state = tmp_path / "state" / "emulator.json"
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT), PREFECT_API_URL=str(PREFECT_API_URL.value()))
    done = subprocess.run(
        [sys.executable, "-m", "managed_agents.cli", "quickstart", "--block-name", block_name,
         "--port", str(free_port()), "--state", str(state)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    restart = re.search(r"managed-agents emulator --port (\d+) --state (\S+)", done.stdout)
    assert restart, done.stdout
    outputs = [p for p in (tmp_path / "outputs").glob("*") if p.is_file()]  # not our hidden records
    assert outputs, done.stdout
    assert all(stat.S_IMODE(p.stat().st_mode) & stat.S_IRGRP for p in outputs)  # umask 022: 0644

    agent = ManagedAgent.load(block_name, _sync=True)  # type: ignore[call-arg]
    assert isinstance(agent, ManagedAgent)
    assert is_saved_block(agent.credentials), "credentials are saved inside the agent block"
    creds = AnthropicCredentials.load(credentials_block_name(block_name), _sync=True)  # type: ignore[call-arg]
    assert isinstance(creds, AnthropicCredentials)
    assert creds.base_url == agent.credentials.base_url == f"http://127.0.0.1:{restart.group(1)}"

    with EmulatorServer(EmulatorConfig(state_file=tmp_path / restart.group(2)), port=int(restart.group(1))):
        result = run_agent_session(
            agent=block_name, prompt="Again, briefly.", output_dir=str(tmp_path / "outputs" / "again")
        )
    assert result.status == "idle" and result.stop_reason == "end_turn"
