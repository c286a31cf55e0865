"""Campaign fixtures, and the summary printed after the run (one line per check)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest
from _pytest.terminal import TerminalReporter

from emulator import EmulatorServer
from tests.conftest import TEST_API_KEY
from tests.integration.session_helpers import RemoteAgent, create_remote_agent

from .campaign import LINES, MODE


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    """Print the campaign's figures, whatever ``-s``/``-q`` say."""
    if not LINES:
        return
    terminalreporter.section(f"reliability campaign ({MODE})")
    for line in LINES:
        terminalreporter.write_line(line)


@pytest.fixture
def remote_agent(client: anthropic.Anthropic) -> RemoteAgent:
    """An agent and environment on the per-test emulator."""
    return create_remote_agent(client)


@pytest.fixture
def agent_block(emulator: EmulatorServer, remote_agent: RemoteAgent, prefect_harness: None) -> Iterator[str]:
    """A saved ``ManagedAgent`` block for ``remote_agent`` (summary verbosity); yields its name."""
    from tests.integration.session_helpers import save_agent_block

    yield save_agent_block(remote_agent, emulator.url, TEST_API_KEY, verbosity="summary")


def leftovers(folder: Path) -> list[str]:
    """Files under ``folder`` that a failed or interrupted run must not leave: partial downloads."""
    from blocks.output_sinks import TEMP_PREFIX

    if not folder.exists():
        return []
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and (p.name.startswith(TEMP_PREFIX) or p.name.endswith(".part"))
    )
