"""Campaign fixtures, and the summary printed after the run (one line per check)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest

from emulator import EmulatorServer
from tests.conftest import TEST_API_KEY
from tests.integration.session_helpers import RemoteAgent, create_remote_agent

from .campaign import LINES, MODE

_FIRST_LINE = pytest.StashKey[int]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    item.stash[_FIRST_LINE] = len(LINES)
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach the lines a check recorded to its report: the summary reads them from there, also
    when the check ran in a pytest-xdist worker."""
    outcome = yield
    if call.when == "call":
        report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
        first = item.stash.get(_FIRST_LINE, len(LINES))
        report.user_properties.extend((f"reliability campaign ({MODE})", line) for line in LINES[first:])


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
    from managed_agents_core.output_sinks import TEMP_PREFIX

    if not folder.exists():
        return []
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and (p.name.startswith(TEMP_PREFIX) or p.name.endswith(".part"))
    )
