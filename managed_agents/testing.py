"""Test your own flows offline: a pytest plugin that runs them against the local emulator.

Installed with the package (a ``pytest11`` entry point), so its fixtures are there in any
project that depends on ``prefect-managed-agents``; their names start with ``managed_agents_``.
Flows need a Prefect API: use Prefect's ``prefect_test_harness`` (once per test session).

Example:
    ```python
    import pytest
    from prefect.testing.utilities import prefect_test_harness

    from flows.session import run_agent_session
    from managed_agents.testing import scenario


    @pytest.fixture(scope="session", autouse=True)
    def prefect_server():
        with prefect_test_harness():
            yield


    def test_nightly_report(managed_agents_agent, tmp_path):
        managed_agents_agent("agents/report-writer.yaml", "report-writer-prod")
        result = run_agent_session(
            agent="report-writer-prod",
            prompt=scenario(reply="Done.", outputs=[{"name": "report.md", "size": 120}]),
            output_dir=str(tmp_path),
        )
        assert (tmp_path / "report.md").stat().st_size == 120
    ```

Nothing here reaches the real API: the credentials point at the emulator, and the environment's
``ANTHROPIC_API_KEY`` / ``ANTHROPIC_BASE_URL`` are replaced for the test. pytest's temporary
folder joins the input and output roots for the test. Prefect and the integration are imported
inside the fixtures, so loading the plugin changes no Prefect setting.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from blocks.agent import ManagedAgent
    from blocks.credentials import AnthropicCredentials
    from emulator import EmulatorConfig, EmulatorServer

EMULATOR_API_KEY = "sk-ant-emulator-test-key"
"""The key the plugin's credentials carry (the emulator accepts any non-empty key)."""


def scenario(**keys: Any) -> str:
    """A prompt that tells the emulator's scripted agent what its turn does.

    The keys are those of ``emulator/SCENARIOS.md``, for example ``reply`` (its last message),
    ``outputs`` (files it writes: ``[{"name": "a.csv", "size": 10}]``), ``stop`` (a stop reason
    such as ``budget_reached``), ``tools`` and ``custom_tools`` (calls it makes).

    Args:
        **keys: What the turn does.
    """
    from emulator import scenario_prompt

    return scenario_prompt(**keys)


@pytest.fixture
def managed_agents_emulator_config() -> EmulatorConfig:
    """The emulator's settings: the instant profile. Override this fixture to test against the
    realistic one (lists that lag, streams that drop), e.g.
    ``EmulatorConfig.profile("realistic", scale=0.2)``."""
    from emulator import EmulatorConfig

    return EmulatorConfig()


@pytest.fixture
def managed_agents_emulator(managed_agents_emulator_config: EmulatorConfig) -> Iterator[EmulatorServer]:
    """A fresh emulator on a free loopback port for the test, stopped after it."""
    from emulator import EmulatorServer

    with EmulatorServer(managed_agents_emulator_config) as server:
        yield server


@pytest.fixture
def managed_agents_roots(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Add pytest's temporary folder to the input and output roots for the test, so flows may read
    and write under ``tmp_path`` (the roots in force still guard everything else)."""
    from managed_agents_core.settings import SecuritySettings

    settings, temporary = SecuritySettings(), str(tmp_path_factory.getbasetemp())
    for name, roots in (("INPUT", settings.input_roots), ("OUTPUT", settings.output_roots)):
        monkeypatch.setenv(f"MANAGED_AGENTS_{name}_ROOTS", json.dumps([*map(str, roots), temporary]))


@pytest.fixture
def managed_agents_credentials(
    managed_agents_emulator: EmulatorServer, managed_agents_roots: None, monkeypatch: pytest.MonkeyPatch
) -> AnthropicCredentials:
    """Credentials for the test's emulator; the environment's Anthropic settings point at it too,
    and ``tmp_path`` is inside the input and output roots."""
    from pydantic import SecretStr

    from blocks.credentials import AnthropicCredentials

    monkeypatch.setenv("ANTHROPIC_API_KEY", EMULATOR_API_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", managed_agents_emulator.url)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    return AnthropicCredentials(api_key=SecretStr(EMULATOR_API_KEY), base_url=managed_agents_emulator.url)


@pytest.fixture
def managed_agents_agent(
    managed_agents_credentials: AnthropicCredentials,
) -> Callable[[str | Path, str], ManagedAgent]:
    """Deploy a spec to the test's emulator and save its block: ``managed_agents_agent(spec, block_name)``.

    Runs ``deploy_agent`` (so a Prefect API must be up), with the emulator's credentials; the
    block then runs sessions against the emulator wherever your flows name it.
    """
    from flows.setup import deploy_agent

    def deploy(spec: str | Path, block_name: str) -> ManagedAgent:
        return deploy_agent(str(spec), block_name, credentials=managed_agents_credentials)

    return deploy
