"""Agents endpoints through the real SDK, every body validated strictly with the SDK's models."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
from anthropic.types.beta import BetaManagedAgentsAgent

from tests.contract.strict import body_of, strict

TOOLS: list[Any] = [
    {
        "type": "agent_toolset_20260401",
        "configs": [
            {"name": "bash", "permission_policy": {"type": "always_ask"}},
            {"name": "web_fetch", "allowed_domains": ["example.com"], "max_content_tokens": 1000},
        ],
    },
    {"type": "mcp_toolset", "mcp_server_name": "linear"},
    {
        "type": "custom",
        "name": "lookup_ticket",
        "description": "Look up a ticket",
        "input_schema": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]},
    },
]
MCP: list[Any] = [{"type": "url", "name": "linear", "url": "https://mcp.linear.app/sse"}]


def _page(raw: Any) -> list[BetaManagedAgentsAgent]:
    body = body_of(raw)
    assert set(body) == {"data", "next_page"}
    return [strict(BetaManagedAgentsAgent, item) for item in body["data"]]


def test_create_resolves_tools_model_and_skills(client: anthropic.Anthropic) -> None:
    raw = client.beta.agents.with_raw_response.create(
        name="Repo summarizer",
        model="claude-opus-4-8",
        system="You summarize repositories.",
        tools=TOOLS,
        mcp_servers=MCP,
        skills=[
            {"type": "anthropic", "skill_id": "xlsx"},
            {"type": "custom", "skill_id": "skill_1", "version": "3"},
        ],
        metadata={"owner": "prefect"},
    )
    agent = strict(BetaManagedAgentsAgent, body_of(raw))
    assert agent.id.startswith("agent_") and agent.version == 1
    assert agent.model.id == "claude-opus-4-8"
    assert agent.model.effort is not None and agent.model.effort.type == "high"
    assert agent.model.speed == "standard"
    toolset, mcp, custom = agent.tools
    assert toolset.type == "agent_toolset_20260401"
    assert toolset.default_config.enabled is True
    assert toolset.default_config.permission_policy.type == "always_allow"
    bash, web_fetch = toolset.configs
    assert (bash.type, bash.name, bash.enabled, bash.permission_policy.type) == (
        "bash",
        "bash",
        True,
        "always_ask",
    )
    assert web_fetch.type == "web_fetch" and web_fetch.allowed_domains == ["example.com"]
    assert web_fetch.permission_policy.type == "always_allow"
    assert (
        mcp.type == "mcp_toolset"
        and mcp.configs == []
        and mcp.default_config.permission_policy.type == "always_ask"
    )
    assert custom.type == "custom" and custom.name == "lookup_ticket"
    assert [s.version for s in agent.skills] == ["latest", "3"]
    assert agent.execution_identity.type == "service_account"
    assert agent.metadata == {"owner": "prefect"}
    assert agent.archived_at is None and agent.multiagent is None


def test_effort_forms_and_model_object(client: anthropic.Anthropic) -> None:
    a = client.beta.agents.create(
        name="a", model={"id": "claude-sonnet-4-6", "effort": "low", "speed": "fast"}
    )
    b = client.beta.agents.create(name="b", model={"id": "claude-sonnet-4-6", "effort": {"type": "max"}})
    assert a.model.effort is not None and a.model.effort.type == "low" and a.model.speed == "fast"
    assert b.model.effort is not None and b.model.effort.type == "max"


def test_update_versions_and_history(client: anthropic.Anthropic) -> None:
    agent = client.beta.agents.create(
        name="v", model={"id": "claude-opus-4-8", "effort": "low", "inference_geo": "us"}, system="one"
    )
    raw = client.beta.agents.with_raw_response.update(agent.id, version=1, system="two", metadata={"k": "v"})
    v2 = strict(BetaManagedAgentsAgent, body_of(raw))
    assert v2.version == 2 and v2.system == "two" and v2.metadata == {"k": "v"}
    assert v2.model.inference_geo == "us"
    # A model object replaces the stored one: inference_geo cleared, effort kept.
    v3 = client.beta.agents.update(agent.id, model={"id": "claude-opus-4-7"})
    assert v3.version == 3 and v3.model.inference_geo is None
    assert v3.model.effort is not None and v3.model.effort.type == "low"
    # Null clears system; metadata null deletes a key.
    v4 = client.beta.agents.update(agent.id, system=None, metadata={"k": None, "x": "y"})
    assert v4.system is None and v4.metadata == {"x": "y"}
    old = strict(
        BetaManagedAgentsAgent, body_of(client.beta.agents.with_raw_response.retrieve(agent.id, version=1))
    )
    assert old.version == 1 and old.system == "one"
    latest = client.beta.agents.retrieve(agent.id)
    assert latest.version == 4
    versions = _page(client.beta.agents.versions.with_raw_response.list(agent.id))
    assert [v.version for v in versions] == [4, 3, 2, 1]


def test_noop_update_keeps_version(client: anthropic.Anthropic) -> None:
    agent = client.beta.agents.create(name="same", model="claude-opus-4-8", tools=TOOLS, mcp_servers=MCP)
    again = client.beta.agents.update(
        agent.id, version=1, name="same", model="claude-opus-4-8", tools=TOOLS, mcp_servers=MCP
    )
    assert again.version == 1 and again.updated_at == agent.updated_at
    assert len(list(client.beta.agents.versions.list(agent.id))) == 1
    # Sending the resolved tools back is also a no-op.
    resolved = [t.model_dump(exclude_none=True) for t in agent.tools]
    assert client.beta.agents.update(agent.id, tools=resolved).version == 1  # type: ignore[arg-type]


def test_full_replacement_of_tools(client: anthropic.Anthropic) -> None:
    agent = client.beta.agents.create(name="r", model="claude-opus-4-8", tools=TOOLS, mcp_servers=MCP)
    cleared = client.beta.agents.update(agent.id, tools=None, mcp_servers=[])
    assert cleared.tools == [] and cleared.mcp_servers == [] and cleared.version == 2


def test_list_filters_and_pagination(client: anthropic.Anthropic) -> None:
    made = [client.beta.agents.create(name=f"agent-{i}", model="claude-opus-4-8") for i in range(5)]
    client.beta.agents.archive(made[0].id)
    first = client.beta.agents.with_raw_response.list(limit=2)
    items = _page(first)
    assert [a.id for a in items] == [made[4].id, made[3].id]
    assert body_of(first)["next_page"].startswith("page_")
    all_active = [a.id for a in client.beta.agents.list(limit=2)]
    assert all_active == [m.id for m in reversed(made[1:])]
    with_archived = [a.id for a in client.beta.agents.list(include_archived=True)]
    assert made[0].id in with_archived
    after = client.beta.agents.list(created_at_gte=made[2].created_at, include_archived=True)
    assert {a.id for a in after} == {m.id for m in made if m.created_at >= made[2].created_at}
    assert list(client.beta.agents.list(created_at_lte="2000-01-01T00:00:00Z")) == []


def test_archive(client: anthropic.Anthropic) -> None:
    agent = client.beta.agents.create(name="arch", model="claude-opus-4-8")
    raw = client.beta.agents.with_raw_response.archive(agent.id)
    archived = strict(BetaManagedAgentsAgent, body_of(raw))
    assert archived.archived_at is not None
    assert client.beta.agents.retrieve(agent.id, version=1).archived_at is not None
    with pytest.raises(anthropic.BadRequestError):
        client.beta.agents.update(agent.id, system="x")


def test_multiagent_coordinator_and_20261001(client: anthropic.Anthropic) -> None:
    worker = client.beta.agents.create(name="worker", model="claude-haiku-4-5")
    raw = client.beta.agents.with_raw_response.create(
        name="lead",
        model="claude-opus-4-8",
        multiagent={"type": "coordinator", "agents": [worker.id, {"type": "self"}]},
    )
    lead = strict(BetaManagedAgentsAgent, body_of(raw))
    assert lead.multiagent is not None and lead.multiagent.type == "coordinator"
    refs = [(r.id, getattr(r, "version", None)) for r in lead.multiagent.agents]
    assert refs == [(worker.id, 1), (lead.id, 1)]
    raw2 = client.beta.agents.with_raw_response.create(
        name="new-style",
        model="claude-opus-4-8",
        multiagent={
            "type": "multiagent_20261001",
            "subagents": {"type": "enabled", "predefined_agents": [worker.id]},
        },
    )
    modern = strict(BetaManagedAgentsAgent, body_of(raw2))
    assert modern.multiagent is not None and modern.multiagent.type == "multiagent_20261001"
    assert modern.multiagent.advisor.type == "disabled"
    assert modern.multiagent.workflows.type == "enabled"
    sub = modern.multiagent.subagents
    assert sub.type == "enabled" and [(p.id, p.version) for p in sub.predefined_agents] == [(worker.id, 1)]
    # Merge on update: only the advisor changes, subagents keep their roster.
    updated = client.beta.agents.update(
        modern.id,
        multiagent={
            "type": "multiagent_20261001",
            "advisor": {"type": "enabled", "model": "claude-opus-4-8"},
        },
    )
    assert updated.version == 2 and updated.multiagent is not None
    assert updated.multiagent.type == "multiagent_20261001"
    assert updated.multiagent.advisor.type == "enabled"
    assert updated.multiagent.subagents.type == "enabled"
    assert [p.id for p in updated.multiagent.subagents.predefined_agents] == [worker.id]


async def test_async_create_update_list(async_client: anthropic.AsyncAnthropic) -> None:
    raw = await async_client.beta.agents.with_raw_response.create(name="async", model="claude-opus-4-8")
    agent = strict(BetaManagedAgentsAgent, body_of(raw))
    updated = await async_client.beta.agents.update(agent.id, version=agent.version, description="d")
    assert updated.version == 2 and updated.description == "d"
    listed = [a.id async for a in async_client.beta.agents.list()]
    assert listed == [agent.id]
    versions = [v.version async for v in async_client.beta.agents.versions.list(agent.id, limit=1)]
    assert versions == [2, 1]
