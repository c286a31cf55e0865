"""Shared fixtures: a fresh emulator per test, real SDK clients, one Prefect server per session."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

# Settings that must be in place before Prefect is imported anywhere.
_RESULTS = tempfile.mkdtemp(prefix="pma-test-results-")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] = _RESULTS
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
for _var in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN"):
    os.environ.pop(_var, None)

import anthropic  # noqa: E402
import pytest  # noqa: E402

from emulator import EmulatorConfig, EmulatorServer  # noqa: E402

TEST_API_KEY = "sk-ant-test-0123456789-SECRET"


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """Settings for the per-test emulator; override this fixture to change them."""
    return EmulatorConfig()


@pytest.fixture
def emulator(emulator_config: EmulatorConfig) -> Iterator[EmulatorServer]:
    """A fresh emulator on a free loopback port, stopped after the test."""
    with EmulatorServer(emulator_config) as server:
        yield server


@pytest.fixture
def client(emulator: EmulatorServer) -> Iterator[anthropic.Anthropic]:
    """The real sync SDK client pointed at the emulator."""
    with anthropic.Anthropic(api_key=TEST_API_KEY, base_url=emulator.url) as c:
        yield c


@pytest.fixture
async def async_client(emulator: EmulatorServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    """The real async SDK client pointed at the emulator."""
    async with anthropic.AsyncAnthropic(api_key=TEST_API_KEY, base_url=emulator.url) as c:
        yield c


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One real local Prefect server (SQLite, temporary) for the whole test session.

    Request it (directly or with ``pytest.mark.usefixtures``) in tests that run flows.
    """
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture
def tmp_outputs(tmp_path: Path) -> Path:
    """A per-test output folder."""
    out = tmp_path / "outputs"
    out.mkdir()
    return out
