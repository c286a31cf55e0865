"""The vault rules that need no API: what the spec names, what reaches the agent, what a run may ask for."""

from __future__ import annotations

from typing import Any

import pytest
from anthropic.types.beta import agent_create_params
from pydantic import TypeAdapter

from blocks import AgentDeploymentSpec, SpecValidationError, VaultNotAllowedError
from managed_agents_core.vaults import chosen_vaults


def spec(*, vault: str | None, vaults: list[str] | None = None) -> dict[str, Any]:
    server: dict[str, Any] = {"type": "url", "name": "linear", "url": "https://mcp.linear.app/sse"}
    if vault is not None:
        server["vault"] = vault
    return {
        "name": "writer",
        "model": "claude-opus-4-8",
        "environment": {"name": "env"},
        "tools": [{"type": "mcp_toolset", "mcp_server_name": "linear"}],
        "mcp_servers": [server],
        **({"vaults": vaults} if vaults is not None else {}),
    }


def test_a_servers_vault_stays_out_of_the_agent_and_its_fingerprint() -> None:
    with_vault = AgentDeploymentSpec.parse(spec(vault="linear-tokens", vaults=["vlt_1", "linear-tokens"]))
    without = AgentDeploymentSpec.parse(spec(vault=None))
    assert with_vault.agent_params() == without.agent_params()
    assert with_vault.fingerprint() == without.fingerprint()  # a vault change is no new agent version
    TypeAdapter(agent_create_params.AgentCreateParams).validate_python(with_vault.agent_params(), strict=True)
    assert with_vault.vault_refs() == ["linear-tokens", "vlt_1"]  # each once, the servers' first


@pytest.mark.parametrize("data", [spec(vault=""), spec(vault=None, vaults=[" "])])
def test_blank_vault_references_are_spec_errors(data: dict[str, Any]) -> None:
    with pytest.raises(SpecValidationError, match="vault"):
        AgentDeploymentSpec.parse(data)


def test_a_run_may_narrow_the_blocks_vaults_but_never_add_one() -> None:
    allowed = ["vlt_a", "vlt_b"]
    assert chosen_vaults(None, allowed) == ("vlt_a", "vlt_b")
    assert chosen_vaults(["vlt_b", "vlt_b"], allowed) == ("vlt_b",)
    assert chosen_vaults([], allowed) == ()
    with pytest.raises(VaultNotAllowedError, match="vlt_other") as raised:
        chosen_vaults(["vlt_a", "vlt_other"], allowed)
    assert "vlt_a, vlt_b" in str(raised.value)  # says what may be chosen
    with pytest.raises(VaultNotAllowedError, match=r"\(none\)"):
        chosen_vaults(["vlt_a"], [])
