"""Vaults through deploy_agent and the runtime flows, against the emulator (real SDK, real HTTP)
and a real local Prefect server.

The spec names the vaults (an MCP server's ``vault``, or ``vaults:``); deploy_agent resolves them
before anything is created and saves them on the block; every new session gets the block's
vaults, and a flow-run parameter may only narrow them.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from blocks import (
    AgentDeploymentSpec,
    AmbiguousVaultError,
    AnthropicCredentials,
    ManagedAgent,
    VaultArchivedError,
    VaultNotAllowedError,
    VaultNotFoundError,
)
from blocks.agent import atrigger_session
from emulator import EmulatorServer
from flows.batch import run_agent_batch
from flows.session import run_agent_session
from flows.setup import deploy_agent
from managed_agents_core.batch_items import BatchItem
from tests.conftest import TEST_API_KEY, sdk_client
from tests.integration.session_helpers import agent_block, create_remote_agent, scenario, settled

pytestmark = pytest.mark.usefixtures("prefect_harness")

TICKETS_URL = "https://mcp.example.com/tickets"


@pytest.fixture
def sdk(emulator: EmulatorServer) -> Iterator[anthropic.Anthropic]:
    with sdk_client(emulator.url) as c:
        yield c


@pytest.fixture
def creds(emulator: EmulatorServer) -> AnthropicCredentials:
    return AnthropicCredentials(api_key=TEST_API_KEY, base_url=emulator.url)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def ticket_vault(sdk: anthropic.Anthropic, name: str, *, url: str = TICKETS_URL) -> str:
    """A vault with a bearer-token credential for the MCP server at ``url``."""
    vault = sdk.beta.vaults.create(display_name=name)
    sdk.beta.vaults.credentials.create(
        vault.id, auth={"type": "static_bearer", "mcp_server_url": url, "token": "tok-SECRET-123"}
    )
    return vault.id


def spec(*, server_vault: str | None, vaults: list[str] | None = None) -> AgentDeploymentSpec:
    server: dict[str, Any] = {"type": "url", "name": "tickets", "url": TICKETS_URL}
    if server_vault is not None:
        server["vault"] = server_vault
    return AgentDeploymentSpec.parse(
        {
            "name": unique("support-agent"),
            "model": "claude-opus-4-8",
            "tools": [
                {"type": "agent_toolset_20260401"},
                {"type": "mcp_toolset", "mcp_server_name": "tickets"},
            ],
            "mcp_servers": [server],
            "vaults": vaults or [],
            "environment": {"name": unique("support-env")},
        }
    )


def api_writes(emulator: EmulatorServer) -> list[str]:
    return [
        f"{r['method']} {r['path']}"
        for r in emulator.control.requests()
        if r["method"] in {"POST", "PUT", "PATCH", "DELETE"} and r["path"].startswith("/v1/")
    ]


def deploy_report(block_name: str) -> str:
    with get_client(sync_client=True) as prefect:
        found = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"deploy-{block_name}"]))
        )
    return str(max(found, key=lambda a: a.created or 0).data)


def test_deploy_saves_the_vaults_the_spec_names_and_keeps_them_out_of_the_agent(
    emulator: EmulatorServer, sdk: anthropic.Anthropic, creds: AnthropicCredentials
) -> None:
    tickets = ticket_vault(sdk, unique("ticket-tools"))
    secrets_name = unique("ci-secrets")
    secrets = sdk.beta.vaults.create(display_name=secrets_name).id
    block_name = unique("support")
    first = spec(server_vault=tickets, vaults=[secrets_name])

    block = deploy_agent(first, block_name, credentials=creds)

    assert block.vault_ids == [tickets, secrets]  # the server's by id, the extra one by display name
    assert ManagedAgent.load(block_name, _sync=True).vault_ids == [tickets, secrets]  # type: ignore[call-arg]
    servers = sdk.beta.agents.retrieve(block.agent_id).mcp_servers
    assert [s.model_dump(exclude_none=True) for s in servers] == [
        {"type": "url", "name": "tickets", "url": TICKETS_URL}
    ]  # the vault is the sessions' business, not the agent's
    assert f"| Vaults | `{tickets}`, `{secrets}` |" in deploy_report(block_name)

    emulator.control.clear_requests()
    narrowed = AgentDeploymentSpec.parse({**first.model_dump(exclude_unset=True), "vaults": []})
    again = deploy_agent(narrowed, block_name, credentials=creds)
    assert again.vault_ids == [tickets]
    assert (again.agent_id, again.version) == (block.agent_id, block.version)
    assert api_writes(emulator) == []  # a vault change moves the block, not the agent


@pytest.mark.parametrize("case", ["unknown name", "unknown id", "archived", "ambiguous"])
def test_a_vault_that_cannot_be_used_fails_the_deploy_before_anything_is_created(
    emulator: EmulatorServer, sdk: anthropic.Anthropic, creds: AnthropicCredentials, case: str
) -> None:
    name = unique("tools")
    expected: type[Exception] = VaultNotFoundError
    ref = name
    if case == "unknown id":
        ref = "vlt_011CZdoesnotexist"
    elif case == "archived":
        sdk.beta.vaults.archive(ticket_vault(sdk, name))
        expected = VaultArchivedError
    elif case == "ambiguous":
        ticket_vault(sdk, name)
        ticket_vault(sdk, name)
        expected = AmbiguousVaultError
    emulator.control.clear_requests()
    block_name = unique("support")

    with pytest.raises(expected) as raised:
        deploy_agent(spec(server_vault=ref), block_name, credentials=creds)

    assert ref in str(raised.value)
    assert api_writes(emulator) == []  # no environment, no agent
    with pytest.raises(ValueError):
        ManagedAgent.load(block_name, _sync=True)  # type: ignore[call-arg]


def test_a_vault_without_a_credential_for_its_server_is_deployed_with_a_warning(
    sdk: anthropic.Anthropic, creds: AnthropicCredentials, caplog: pytest.LogCaptureFixture
) -> None:
    vault = ticket_vault(sdk, unique("ticket-tools"), url="https://mcp.example.com/other")
    with caplog.at_level(logging.WARNING):
        block = deploy_agent(spec(server_vault=vault), unique("support"), credentials=creds)
    assert block.vault_ids == [vault]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(vault in w and TICKETS_URL in w and "no active credential" in w for w in warnings), warnings
    assert "tok-SECRET-123" not in caplog.text


@pytest.fixture
def vaulted(emulator: EmulatorServer, sdk: anthropic.Anthropic) -> tuple[str, list[str], str]:
    """A saved block with two vaults, and a third vault of the workspace it does not list."""
    first, second, other = (ticket_vault(sdk, unique(n)) for n in ("tickets", "wiki", "payroll"))
    block = agent_block(
        create_remote_agent(sdk),
        emulator.url,
        TEST_API_KEY,
        agent_name="vault-test",
        vault_ids=[first, second],
    )
    name = unique("vault-test")
    block.save(name, _sync=True)  # type: ignore[call-arg]
    return name, [first, second], other


def session_vaults(sdk: anthropic.Anthropic, session_id: str) -> list[str]:
    return list(settled(sdk).beta.sessions.retrieve(session_id).vault_ids)


def session_count(sdk: anthropic.Anthropic) -> int:
    return len(list(settled(sdk).beta.sessions.list(limit=100)))


def test_sessions_get_the_blocks_vaults_and_a_run_may_only_narrow_them(
    sdk: anthropic.Anthropic, vaulted: tuple[str, list[str], str], tmp_path: Path
) -> None:
    block_name, (first, second), other = vaulted

    default = run_agent_session(block_name, scenario(), output_dir=str(tmp_path / "a"))
    narrowed = run_agent_session(block_name, scenario(), output_dir=str(tmp_path / "b"), vault_ids=[second])
    none = run_agent_session(block_name, scenario(), output_dir=str(tmp_path / "c"), vault_ids=[])
    assert session_vaults(sdk, default.session_id) == [first, second]
    assert session_vaults(sdk, narrowed.session_id) == [second]
    assert session_vaults(sdk, none.session_id) == []

    before = session_count(sdk)
    with pytest.raises(VaultNotAllowedError, match=other):
        run_agent_session(block_name, scenario(), output_dir=str(tmp_path / "d"), vault_ids=[first, other])
    assert session_count(sdk) == before  # refused before anything was created


@pytest.mark.parametrize("item_runs", ["task", "flow"])
def test_a_batch_passes_its_vaults_to_every_item_and_refuses_others_before_any_session(
    sdk: anthropic.Anthropic, vaulted: tuple[str, list[str], str], tmp_path: Path, item_runs: str
) -> None:
    block_name, (first, _), other = vaulted
    items = [BatchItem(key=k, prompt=scenario()) for k in ("north", "south")]

    result = run_agent_batch(
        block_name, items, output_dir=str(tmp_path / "out"), item_runs=item_runs, vault_ids=[first]
    )
    assert len(result.completed) == 2
    assert [session_vaults(sdk, i.session_id) for i in result.items if i.session_id] == [[first], [first]]

    before = session_count(sdk)
    with pytest.raises(VaultNotAllowedError):
        run_agent_batch(
            block_name, items, output_dir=str(tmp_path / "out2"), item_runs=item_runs, vault_ids=[other]
        )
    assert session_count(sdk) == before


async def test_a_triggered_job_run_keeps_to_the_blocks_vaults(
    sdk: anthropic.Anthropic, vaulted: tuple[str, list[str], str]
) -> None:
    block_name, (first, second), other = vaulted
    block = await ManagedAgent.aload(block_name)
    run = await atrigger_session(block, scenario())
    await run.await_for_completion()
    assert session_vaults(sdk, run.session_id) == [first, second]

    before = session_count(sdk)
    with pytest.raises(VaultNotAllowedError):
        await atrigger_session(block, scenario(), vault_ids=[other])
    assert session_count(sdk) == before
