"""Agents: create, retrieve (``?version=N``), versioned update, list, versions list, archive (§4)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Query
from pydantic import BaseModel, ConfigDict, Field

from ..agents import (
    check_mcp_servers,
    check_snapshot,
    config_of,
    get_agent_snapshot,
    get_agent_versions,
    resolve_execution_identity,
    resolve_model,
    resolve_multiagent,
    resolve_skills,
    resolve_tools,
)
from ..errors import ApiError
from ..ids import new_id, now_iso
from ..listing import created_between
from ..metadata import check_metadata, patch_metadata
from ..pagination import paginate
from ..runtime import Emulator, EmulatorDep

router = APIRouter(prefix="/v1")

_EffortLevel = Literal["low", "medium", "high", "xhigh", "max"]
_Builtin = Literal["bash", "edit", "read", "write", "glob", "grep", "web_fetch", "web_search"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow")


class EffortIn(_Strict):
    """``{"type": <level>}`` form of ``model.effort``."""

    type: _EffortLevel


class ModelConfigIn(_Strict):
    """The object form of ``model``."""

    id: str = Field(min_length=1)
    effort: _EffortLevel | EffortIn | None = None
    inference_geo: str | None = None
    speed: Literal["standard", "fast"] | None = None


class PolicyIn(_Strict):
    """A permission policy."""

    type: Literal["always_allow", "always_ask", "auto"]


class ToolsetDefaultIn(_Strict):
    """A toolset's ``default_config``."""

    enabled: bool | None = None
    permission_policy: PolicyIn | None = None


class BuiltinConfigIn(_Strict):
    """One entry of an agent toolset's ``configs``."""

    name: _Builtin
    type: _Builtin | None = None
    enabled: bool | None = None
    permission_policy: PolicyIn | None = None
    allowed_domains: list[str] | None = None
    blocked_domains: list[str] | None = None
    max_content_tokens: int | None = Field(default=None, ge=1)
    url_sources: dict[str, Any] | None = None
    user_location: dict[str, Any] | None = None


class AgentToolsetIn(_Strict):
    """``agent_toolset_20260401``."""

    type: Literal["agent_toolset_20260401"]
    default_config: ToolsetDefaultIn | None = None
    configs: list[BuiltinConfigIn] | None = None


class McpConfigIn(_Strict):
    """One entry of an MCP toolset's ``configs``."""

    name: str = Field(min_length=1)
    enabled: bool | None = None
    permission_policy: PolicyIn | None = None


class McpToolsetIn(_Strict):
    """``mcp_toolset``."""

    type: Literal["mcp_toolset"]
    mcp_server_name: str = Field(min_length=1)
    default_config: ToolsetDefaultIn | None = None
    configs: list[McpConfigIn] | None = None


class InputSchemaIn(_Loose):
    """A custom tool's JSON schema (extra JSON-schema keys are kept)."""

    type: Literal["object"]
    properties: dict[str, Any] | None = None
    required: list[str] | None = None


class CustomToolIn(_Strict):
    """A custom (client-executed) tool."""

    type: Literal["custom"]
    name: str
    description: str
    input_schema: InputSchemaIn


ToolIn = Annotated[AgentToolsetIn | McpToolsetIn | CustomToolIn, Field(discriminator="type")]


class McpServerIn(_Strict):
    """A URL MCP server."""

    type: Literal["url"]
    name: str = Field(min_length=1, max_length=255)
    url: str = Field(min_length=1)


class SkillIn(_Strict):
    """An Anthropic or custom skill."""

    type: Literal["anthropic", "custom"]
    skill_id: str = Field(min_length=1)
    version: str | int | None = None


class ServiceAccountIn(_Strict):
    """The default execution identity."""

    type: Literal["service_account"]


class AwsRoleIn(_Strict):
    """An AWS role execution identity."""

    type: Literal["aws_role"]
    role_arn: str = Field(min_length=1)


IdentityIn = Annotated[ServiceAccountIn | AwsRoleIn, Field(discriminator="type")]


class AgentRefIn(_Strict):
    """``{"type": "agent", "id", "version"?}``."""

    type: Literal["agent"]
    id: str = Field(min_length=1)
    version: int | None = Field(default=None, ge=1)


class SelfRefIn(_Strict):
    """``{"type": "self"}``."""

    type: Literal["self"]


class AdvisorEntryIn(_Strict):
    """``{"type": "advisor", "model"}`` roster entry."""

    type: Literal["advisor"]
    model: str = Field(min_length=1)


RosterEntry = str | Annotated[AgentRefIn | SelfRefIn | AdvisorEntryIn, Field(discriminator="type")]
PredefinedEntry = str | Annotated[AgentRefIn | SelfRefIn, Field(discriminator="type")]


class CoordinatorIn(_Strict):
    """The ``coordinator`` multiagent form."""

    type: Literal["coordinator"]
    agents: list[RosterEntry]


class SwitchIn(_Strict):
    """``{"type": "enabled"|"disabled"}``."""

    type: Literal["enabled", "disabled"]


class AdvisorMemberIn(_Strict):
    """``multiagent_20261001.advisor``."""

    type: Literal["enabled", "disabled"]
    model: str | None = None


class ThreadsMemberIn(_Strict):
    """``multiagent_20261001.subagents`` / ``.workflows``."""

    type: Literal["enabled", "disabled"]
    inline_agents: SwitchIn | None = None
    predefined_agents: list[PredefinedEntry] | None = None


class Multiagent20261001In(_Strict):
    """The ``multiagent_20261001`` form."""

    type: Literal["multiagent_20261001"]
    advisor: AdvisorMemberIn | None = None
    subagents: ThreadsMemberIn | None = None
    workflows: ThreadsMemberIn | None = None


MultiagentIn = Annotated[CoordinatorIn | Multiagent20261001In, Field(discriminator="type")]


class AgentCreate(_Strict):
    """Body of ``POST /v1/agents``."""

    name: str = Field(min_length=1, max_length=256)
    model: str | ModelConfigIn
    description: str | None = Field(default=None, max_length=2048)
    system: str | None = Field(default=None, max_length=100_000)
    tools: list[ToolIn] = Field(default_factory=list)
    mcp_servers: list[McpServerIn] = Field(default_factory=list)
    skills: list[SkillIn] = Field(default_factory=list)
    multiagent: MultiagentIn | None = None
    execution_identity: IdentityIn | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class AgentUpdate(_Strict):
    """Body of ``POST /v1/agents/{id}``: omitted keys keep the stored value."""

    version: int | None = Field(default=None, ge=1)
    name: str | None = Field(default=None, min_length=1, max_length=256)
    model: str | ModelConfigIn | None = None
    description: str | None = Field(default=None, max_length=2048)
    system: str | None = Field(default=None, max_length=100_000)
    tools: list[ToolIn] | None = None
    mcp_servers: list[McpServerIn] | None = None
    skills: list[SkillIn] | None = None
    multiagent: MultiagentIn | None = None
    execution_identity: IdentityIn | None = None
    metadata: dict[str, str | None] | None = None


def _dump(items: list[Any] | None) -> list[dict[str, Any]]:
    return [i.model_dump(exclude_unset=True) for i in items or []]


def _dump_one(item: Any) -> Any:
    return item.model_dump(exclude_unset=True) if isinstance(item, BaseModel) else item


def _build(
    emulator: Emulator,
    fields: dict[str, Any],
    *,
    agent_id: str,
    version: int,
    previous: dict[str, Any] | None,
) -> dict[str, Any]:
    """Resolve request fields (already merged with the stored ones) into a snapshot."""
    tools = resolve_tools(fields["tools"])
    self_ref = {"type": "agent", "id": agent_id, "version": version}
    return {
        "type": "agent",
        "id": agent_id,
        "version": version,
        "name": fields["name"],
        "description": fields["description"] or None,
        "system": fields["system"] or None,
        "model": resolve_model(fields["model"], previous["model"] if previous else None),
        "tools": tools,
        "mcp_servers": check_mcp_servers(fields["mcp_servers"], tools),
        "skills": resolve_skills(fields["skills"]),
        "multiagent": resolve_multiagent(
            emulator,
            fields["multiagent"],
            self_ref=self_ref,
            previous=previous["multiagent"] if previous else None,
        ),
        "execution_identity": resolve_execution_identity(fields["execution_identity"]),
        "metadata": fields["metadata"],
    }


@router.post("/agents")
async def create_agent(body: AgentCreate, emulator: EmulatorDep) -> dict[str, Any]:
    """Create an agent at version 1."""
    fields = {
        "name": body.name,
        "model": _dump_one(body.model),
        "description": body.description,
        "system": body.system,
        "tools": _dump(body.tools),
        "mcp_servers": _dump(body.mcp_servers),
        "skills": _dump(body.skills),
        "multiagent": _dump_one(body.multiagent),
        "execution_identity": _dump_one(body.execution_identity),
        "metadata": check_metadata(body.metadata),
    }
    agent_id = new_id("agent")
    snapshot = _build(emulator, fields, agent_id=agent_id, version=1, previous=None)
    now = now_iso()
    snapshot.update(created_at=now, updated_at=now, archived_at=None)
    emulator.store.agent_versions[agent_id] = [check_snapshot(snapshot)]
    emulator.save()
    return snapshot


@router.get("/agents/{agent_id}")
async def retrieve_agent(
    agent_id: str, emulator: EmulatorDep, version: Annotated[int | None, Query(ge=1)] = None
) -> dict[str, Any]:
    """Return the latest agent, or the snapshot at ``?version=N``."""
    return get_agent_snapshot(emulator, agent_id, version)


@router.post("/agents/{agent_id}")
async def update_agent(agent_id: str, body: AgentUpdate, emulator: EmulatorDep) -> dict[str, Any]:
    """Write a new version; a no-op update returns the current version unchanged."""
    versions = get_agent_versions(emulator, agent_id)
    current = versions[-1]
    if current.get("archived_at") is not None:
        raise ApiError(400, f"agent {agent_id!r} is archived and cannot be updated.")
    if body.version is not None and body.version != current["version"]:
        raise ApiError(
            409,
            f"agent {agent_id!r} is at version {current['version']}, not {body.version}; "
            "retrieve it and retry the update.",
        )
    sent = body.model_fields_set
    if "name" in sent and body.name is None:
        raise ApiError(400, "name cannot be cleared.")
    if "model" in sent and body.model is None:
        raise ApiError(400, "model cannot be cleared.")
    stored = _request_view(current)
    fields = dict(stored)
    for key in ("name", "description", "system", "execution_identity", "multiagent"):
        if key in sent:
            fields[key] = _dump_one(getattr(body, key))
    if "model" in sent:
        fields["model"] = _dump_one(body.model)
    for key in ("tools", "mcp_servers", "skills"):
        if key in sent:
            fields[key] = _dump(getattr(body, key))
    if "metadata" in sent and body.metadata is not None:
        fields["metadata"] = patch_metadata(current["metadata"], body.metadata)
    version = current["version"] + 1
    snapshot = _build(emulator, fields, agent_id=agent_id, version=version, previous=current)
    # "self" roster entries resolve to the version being written; compare with it neutralised.
    if _same_config(snapshot, current):
        return current
    now = now_iso()
    snapshot.update(created_at=current["created_at"], updated_at=now, archived_at=None)
    versions.append(check_snapshot(snapshot))
    emulator.save()
    return snapshot


def _request_view(snapshot: dict[str, Any]) -> dict[str, Any]:
    """Turn a stored snapshot back into request fields (so an update can re-resolve them)."""
    multiagent = snapshot.get("multiagent")
    return {
        "name": snapshot["name"],
        "description": snapshot.get("description"),
        "system": snapshot.get("system"),
        "model": {k: v for k, v in snapshot["model"].items() if v is not None},
        "tools": snapshot["tools"],
        "mcp_servers": snapshot["mcp_servers"],
        "skills": snapshot["skills"],
        "multiagent": _roster_as_request(multiagent, snapshot["id"]) if multiagent else None,
        "execution_identity": snapshot["execution_identity"],
        "metadata": snapshot["metadata"],
    }


def _roster_as_request(multiagent: dict[str, Any], agent_id: str) -> dict[str, Any]:
    """Stored roster entries pointing at the agent itself become ``{"type": "self"}`` again."""

    def entry(e: dict[str, Any]) -> dict[str, Any]:
        return {"type": "self"} if e.get("type") == "agent" and e.get("id") == agent_id else e

    if multiagent["type"] == "coordinator":
        return {"type": "coordinator", "agents": [entry(e) for e in multiagent["agents"]]}
    out = dict(multiagent)
    for member in ("subagents", "workflows"):
        value = out.get(member)
        if value and value.get("type") == "enabled":
            out[member] = {**value, "predefined_agents": [entry(e) for e in value["predefined_agents"]]}
    return out


def _same_config(new: dict[str, Any], current: dict[str, Any]) -> bool:
    new_view = _roster_as_request(new["multiagent"], new["id"]) if new.get("multiagent") else None
    cur_view = _roster_as_request(current["multiagent"], current["id"]) if current.get("multiagent") else None
    return bool(config_of({**new, "multiagent": new_view}) == config_of({**current, "multiagent": cur_view}))


@router.get("/agents")
async def list_agents(
    emulator: EmulatorDep,
    created_at_gte: Annotated[str | None, Query(alias="created_at[gte]")] = None,
    created_at_lte: Annotated[str | None, Query(alias="created_at[lte]")] = None,
    include_archived: bool = False,
    limit: int | None = None,
    page: str | None = None,
) -> dict[str, Any]:
    """List the latest version of every agent, newest first."""
    latest = [versions[-1] for versions in emulator.store.agent_versions.values()]
    if not include_archived:
        latest = [a for a in latest if a.get("archived_at") is None]
    items = created_between(latest, created_at_gte, created_at_lte)
    items.reverse()
    return paginate(items, limit=limit, page=page, order="desc")


@router.get("/agents/{agent_id}/versions")
async def list_agent_versions(
    agent_id: str, emulator: EmulatorDep, limit: int | None = None, page: str | None = None
) -> dict[str, Any]:
    """List every stored version of an agent, newest first."""
    versions = get_agent_versions(emulator, agent_id)
    return paginate(list(reversed(versions)), limit=limit, page=page, order="desc")


@router.post("/agents/{agent_id}/archive")
async def archive_agent(agent_id: str, emulator: EmulatorDep) -> dict[str, Any]:
    """Archive the agent (permanent; blocks new sessions only). Archiving twice is a no-op."""
    versions = get_agent_versions(emulator, agent_id)
    if versions[-1].get("archived_at") is None:
        now = now_iso()
        for snapshot in versions:
            snapshot["archived_at"] = now
        versions[-1]["updated_at"] = now
        emulator.save()
    return versions[-1]


def install(app: FastAPI, emulator: Emulator) -> None:
    """Register this module's routes (and any services it needs) on the app."""
    app.include_router(router)
