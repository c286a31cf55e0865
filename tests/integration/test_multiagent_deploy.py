"""Coordinators through deploy_agent, against the emulator (real SDK, real HTTP) and a real local
Prefect server.

A spec's ``multiagent`` names its callable agents by their own spec file (deployed first, each to
its own block) or by a block deployed before; the coordinator calls each at its pinned version.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from blocks import (
    AgentDeploymentSpec,
    AnthropicCredentials,
    BlockNotFoundError,
    ManagedAgent,
    PathOutsideRootsError,
    SpecValidationError,
)
from emulator import EmulatorServer
from flows.setup import deploy_agent
from managed_agents_core.exceptions import AgentArchivedError, ConfigurationError
from tests.conftest import TEST_API_KEY, sdk_client

pytestmark = pytest.mark.usefixtures("prefect_harness")

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


@pytest.fixture
def creds(emulator: EmulatorServer) -> AnthropicCredentials:
    return AnthropicCredentials(api_key=TEST_API_KEY, base_url=emulator.url)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def agent_spec(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "model": "claude-opus-4-8",
        "system": f"You are {name}.",
        "tools": [{"type": "agent_toolset_20260401"}],
        "environment": {"name": f"{name}-env"},
        **extra,
    }


def write_spec(folder: Path, file_name: str, data: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file_name
    path.write_text(yaml.safe_dump(data))
    return path


def load_block(name: str) -> ManagedAgent:
    block = ManagedAgent.load(name, _sync=True)  # type: ignore[call-arg]
    assert isinstance(block, ManagedAgent)
    return block


def writes(emulator: EmulatorServer) -> list[str]:
    return [
        f"{r['method']} {r['path']}"
        for r in emulator.control.requests()
        if r["path"].startswith("/v1/") and r["method"] in WRITE_METHODS
    ]


def artifact_markdown(key: str) -> str:
    with get_client(sync_client=True) as prefect:
        found = prefect.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    assert found, f"no artifact {key}"
    return str(max(found, key=lambda a: a.created or 0).data)


def remote_agents(emulator: EmulatorServer, name: str) -> list[Any]:
    with sdk_client(emulator.url) as sdk:
        return [a for a in sdk.beta.agents.list() if a.name == name]


def test_callees_are_deployed_first_and_called_at_their_pins(
    emulator: EmulatorServer, creds: AnthropicCredentials, tmp_path: Path
) -> None:
    # A callee deployed before, named by its block.
    checker_name, checker_block = unique("fact-checker"), unique("checker")
    deploy_agent(agent_spec(checker_name), checker_block, credentials=creds)
    # A callee named by its spec file, beside the coordinator's (a relative path).
    researcher_name = unique("researcher")
    write_spec(tmp_path / "specs", "researcher.yaml", agent_spec(researcher_name))
    lead_name, lead_block = unique("research-lead"), unique("lead")
    lead_spec = agent_spec(
        lead_name,
        multiagent={
            "agents": [
                {"spec": "researcher.yaml"},
                {"block": checker_block},
                {"type": "self"},
            ]
        },
    )
    lead_path = write_spec(tmp_path / "specs", "lead.yaml", lead_spec)

    lead = deploy_agent(str(lead_path), lead_block, credentials=creds)

    researcher = load_block(researcher_name)  # saved under the callee's name, slugified
    checker = load_block(checker_block)
    (remote,) = remote_agents(emulator, lead_name)
    assert remote.id == lead.agent_id and lead.version == 1
    assert remote.multiagent is not None and remote.multiagent.type == "coordinator"
    roster = [(getattr(e, "id", None), getattr(e, "version", None)) for e in remote.multiagent.agents]
    assert roster == [  # the service resolves {type: self} to the coordinator's own reference
        (researcher.agent_id, researcher.version),
        (checker.agent_id, checker.version),
        (lead.agent_id, 1),
    ]
    report = artifact_markdown(f"deploy-{lead_block}")
    assert "## Callable agents" in report
    assert (
        f"| spec:{tmp_path / 'specs' / 'researcher.yaml'} | `{researcher.agent_id}` ({researcher_name}) | v1 |"
        in report
    )
    assert (
        f"| block:{checker_block} | `{checker.agent_id}` ({checker_name}) | v1 | `{checker_block}` |"
        in report
    )

    # The same specs again: nothing is written, callees or coordinator.
    before = len(writes(emulator))
    again = deploy_agent(str(lead_path), lead_block, credentials=creds)
    assert again.version == lead.version and len(writes(emulator)) == before

    # A callee's spec changes: it gets v2, and the coordinator is updated to call v2.
    write_spec(tmp_path / "specs", "researcher.yaml", agent_spec(researcher_name, system="Dig deeper."))
    moved = deploy_agent(str(lead_path), lead_block, credentials=creds)
    assert load_block(researcher_name).version == 2
    (remote,) = remote_agents(emulator, lead_name)
    assert moved.version == 2 == remote.version
    assert remote.multiagent is not None
    assert [getattr(e, "version", None) for e in remote.multiagent.agents][:2] == [2, 1]

    # The callees removed from the spec: the update clears the roster.
    cleared = deploy_agent(agent_spec(lead_name), lead_block, credentials=creds)
    (remote,) = remote_agents(emulator, lead_name)
    assert cleared.version == 3 and remote.multiagent is None


def test_bad_callees_fail_before_anything_is_created(
    emulator: EmulatorServer, creds: AnthropicCredentials, tmp_path: Path
) -> None:
    lead_name = unique("lead")
    nested = write_spec(
        tmp_path,
        "nested.yaml",
        agent_spec(unique("nested"), multiagent={"agents": [{"type": "self"}]}),
    )
    broken = write_spec(tmp_path, "broken.yaml", {**agent_spec(unique("broken")), "temperature": 1})
    bad: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"block": unique("no-such-block")}, BlockNotFoundError, "no-such-block"),
        ({"spec": str(nested)}, SpecValidationError, "one level of delegation"),
        ({"spec": str(broken)}, SpecValidationError, "temperature"),
        ({"spec": "/etc/hosts"}, PathOutsideRootsError, "outside"),
        ({"spec": str(tmp_path / "missing.yaml")}, SpecValidationError, "Cannot read spec file"),
    ]
    for entry, error, needle in bad:
        with pytest.raises(error, match=needle):
            deploy_agent(
                agent_spec(lead_name, multiagent={"agents": [entry]}), unique("lead"), credentials=creds
            )
    assert writes(emulator) == [] and remote_agents(emulator, lead_name) == []

    # A callee deployed to the coordinator's own block is refused too.
    callee = write_spec(tmp_path, "callee.yaml", agent_spec(unique("callee")))
    block = unique("lead")
    with pytest.raises(SpecValidationError, match="coordinator's own"):
        deploy_agent(
            agent_spec(lead_name, multiagent={"agents": [{"spec": str(callee), "block": block}]}),
            block,
            credentials=creds,
        )
    assert writes(emulator) == []


def test_an_archived_callee_block_is_refused(emulator: EmulatorServer, creds: AnthropicCredentials) -> None:
    name, block_name = unique("old-helper"), unique("old-helper")
    callee = deploy_agent(agent_spec(name), block_name, credentials=creds)
    with sdk_client(emulator.url) as sdk:
        sdk.beta.agents.archive(callee.agent_id)
    lead_name = unique("lead")
    with pytest.raises(AgentArchivedError, match="archived"):
        deploy_agent(
            agent_spec(lead_name, multiagent={"agents": [{"block": block_name}]}),
            unique("lead"),
            credentials=creds,
        )
    assert remote_agents(emulator, lead_name) == []


@pytest.mark.parametrize(
    ("multiagent", "needle"),
    [
        ({"agents": []}, "at least 1"),
        ({"agents": [{"type": "self", "block": "x"}]}, "takes no spec or block"),
        ({"agents": [{}]}, "give the callee's spec file"),
        ({"agents": [{"block": "Not Valid"}]}, "not a valid block name"),
        ({"agents": [{"block": "a"}, {"block": "a"}]}, "more than once"),
        ({"agents": [{"spec": "a.yaml", "block": "b"}, {"block": "b"}]}, "more than once"),
        ({"agents": [{"block": f"b{i}"} for i in range(21)]}, "at most 20"),
        ({"type": "multiagent_20261001", "agents": [{"type": "self"}]}, "coordinator"),
    ],
)
def test_multiagent_section_is_checked(multiagent: dict[str, Any], needle: str) -> None:
    with pytest.raises(SpecValidationError, match=needle) as info:
        AgentDeploymentSpec.parse(agent_spec("lead", multiagent=multiagent))
    assert "multiagent" in str(info.value)


def test_an_unresolved_roster_is_never_sent() -> None:
    spec = AgentDeploymentSpec.parse(agent_spec("lead", multiagent={"agents": [{"type": "self"}]}))
    with pytest.raises(ConfigurationError, match="deploy_agent"):
        spec.agent_params()
    resolved = spec.with_roster([{"type": "self"}])
    assert resolved.agent_params()["multiagent"] == {"type": "coordinator", "agents": [{"type": "self"}]}
    assert resolved.fingerprint() != AgentDeploymentSpec.parse(agent_spec("lead")).fingerprint()
    plain = AgentDeploymentSpec.parse(agent_spec("lead"))
    assert "multiagent" not in plain.agent_params() and plain.update_params()["multiagent"] is None
