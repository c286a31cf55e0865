"""The blocks on a real Prefect server and their SDK clients against the emulator."""

from __future__ import annotations

import uuid

import anthropic
import pytest
from prefect import get_client
from pydantic import ValidationError

from blocks import AnthropicCredentials, ManagedAgent, MissingCredentialsError
from emulator import EmulatorServer
from managed_agents_core.package_info import INTEGRATION_HEADER
from tests.conftest import TEST_API_KEY


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.mark.usefixtures("prefect_harness")
def test_blocks_save_load_and_keep_the_key_secret(emulator: EmulatorServer) -> None:
    creds_name, agent_name = unique("creds"), unique("agent")
    creds = AnthropicCredentials(api_key=TEST_API_KEY, base_url=emulator.url, timeout=30, max_retries=1)
    creds.save(creds_name)
    agent = ManagedAgent(
        credentials=AnthropicCredentials.load(creds_name, _sync=True),  # type: ignore[call-arg]
        agent_id="agent_011abc",
        version=3,
        environment_id="env_011abc",
        agent_name="report-writer",
        spec_fingerprint="f" * 64,
        log_verbosity="tools",
    )
    agent.save(agent_name)

    loaded = ManagedAgent.load(agent_name, _sync=True)  # type: ignore[call-arg]
    assert isinstance(loaded, ManagedAgent)
    assert (loaded.agent_id, loaded.version, loaded.environment_id) == ("agent_011abc", 3, "env_011abc")
    assert loaded.log_verbosity == "tools" and loaded.max_duration_seconds is None
    assert loaded.credentials.api_key is not None
    assert loaded.credentials.api_key.get_secret_value() == TEST_API_KEY
    assert loaded.credentials.base_url == emulator.url
    assert loaded.agent_reference() == {"type": "agent", "id": "agent_011abc", "version": 3}
    assert loaded.console_url("sesn_1") == "https://platform.claude.com/workspaces/default/sessions/sesn_1"
    # Links point into the credentials' workspace; a workspace id is a plain slug, never a path.
    in_workspace = loaded.model_copy(update={"credentials": AnthropicCredentials(workspace_id="wrkspc_01Ab")})
    assert (
        in_workspace.console_url("sesn_1")
        == "https://platform.claude.com/workspaces/wrkspc_01Ab/sessions/sesn_1"
    )
    with pytest.raises(ValidationError, match="workspace_id"):
        AnthropicCredentials(workspace_id="../../evil.example/x")
    for text in (repr(loaded), str(loaded), repr(loaded.credentials), str(loaded.model_dump())):
        assert TEST_API_KEY not in text

    with get_client(sync_client=True) as prefect:
        doc = prefect.read_block_document_by_name(
            creds_name, block_type_slug="anthropic-credentials", include_secrets=False
        )
    assert set(doc.data["api_key"]) == {"*"}  # masked, as the UI and API show it

    with loaded.credentials.get_client() as client:
        created = client.beta.agents.create(name="via-block", model="claude-opus-4-8")
        assert created.id.startswith("agent_")


def test_environment_fallback_and_provenance_header(
    emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", TEST_API_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", emulator.url)
    creds = AnthropicCredentials()
    assert creds.resolved_api_key() == TEST_API_KEY
    with creds.get_client() as client:
        assert str(client.base_url).rstrip("/") == emulator.url
        assert client.default_headers["x-prefect-integration"] == INTEGRATION_HEADER["x-prefect-integration"]
        assert list(client.beta.agents.list()) == []
    assert emulator.control.requests()[-1]["path"] == "/v1/agents"
    # A field set on the block wins over the environment.
    assert AnthropicCredentials(base_url="http://other:1").resolved_base_url() == "http://other:1"


async def test_async_client(emulator: EmulatorServer) -> None:
    creds = AnthropicCredentials(api_key=TEST_API_KEY, base_url=emulator.url)
    async with creds.get_async_client() as client:
        assert isinstance(client, anthropic.AsyncAnthropic)
        env = await client.beta.environments.create(name="async-env")
        assert env.id.startswith("env_")


@pytest.mark.parametrize("key", [None, "", "  "])
def test_missing_key_raises_without_a_request(emulator: EmulatorServer, key: str | None) -> None:
    creds = AnthropicCredentials(api_key=key, base_url=emulator.url)
    with pytest.raises(MissingCredentialsError, match="ANTHROPIC_API_KEY"):
        creds.get_client()
    with pytest.raises(MissingCredentialsError):
        creds.get_async_client()
    assert emulator.control.requests() == []


def test_bad_field_values_are_rejected() -> None:
    with pytest.raises(ValueError, match="version"):
        ManagedAgent(agent_id="a", version=0, environment_id="e", agent_name="n")
    with pytest.raises(ValueError, match="log_verbosity"):
        ManagedAgent(agent_id="a", version=1, environment_id="e", agent_name="n", log_verbosity="loud")
