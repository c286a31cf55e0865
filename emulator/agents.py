"""Agents and environments as stored objects: lookups for other modules, and agent resolution.

Agents are kept as a list of resolved snapshots per id (``store.agent_versions[id][v - 1]``).
Every snapshot is the exact ``BetaManagedAgentsAgent`` body the API returns for that version.

Decisions where the reference says UNKNOWN:

* ``model.effort`` defaults to ``{"type": "high"}`` and ``model.speed`` to ``"standard"``.
* A skill without ``version`` resolves to ``"latest"``; an integer version is sent back as a string.
* An ``agent_toolset_20260401`` defaults to ``always_allow``; an ``mcp_toolset`` to ``always_ask``.
* The 256-tool limit counts a custom tool as 1, an agent toolset as its 8 built-in tools and an MCP
  toolset as its listed configs (at least 1).
* ``archived_at`` is agent-wide: archiving stamps it on every stored snapshot.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from anthropic.types.beta import BetaManagedAgentsAgent
from pydantic import ValidationError

from .errors import ApiError, not_found
from .runtime import Emulator

BUILTIN_TOOLS = ("bash", "edit", "read", "write", "glob", "grep", "web_fetch", "web_search")
MAX_TOOLS = 256
MAX_MCP_SERVERS = 20
MAX_SKILLS = 20
MAX_ROSTER = 20
DEFAULT_EFFORT = "high"
_CUSTOM_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
# Keys of a snapshot that describe identity or time, not configuration (ignored by no-op checks).
_NON_CONFIG_KEYS = frozenset({"id", "type", "version", "created_at", "updated_at", "archived_at"})


SESSION_AGENT_KEYS = (
    "type",
    "id",
    "version",
    "name",
    "description",
    "model",
    "system",
    "tools",
    "mcp_servers",
    "skills",
    "multiagent",
    "execution_identity",
)
"""The agent fields a session's ``agent`` snapshot carries."""


def get_agent_versions(emulator: Emulator, agent_id: str) -> list[dict[str, Any]]:
    """Return every stored snapshot of an agent, oldest first.

    Raises:
        ApiError: 404 when the agent is unknown.
    """
    versions = emulator.store.agent_versions.get(agent_id)
    if not versions:
        raise not_found("agent", agent_id)
    return versions


def get_agent_snapshot(emulator: Emulator, agent_id: str, version: int | None = None) -> dict[str, Any]:
    """Return the stored (resolved) agent at ``version``, the latest when ``None``.

    Raises:
        ApiError: 404 when the agent or that version does not exist.
    """
    versions = get_agent_versions(emulator, agent_id)
    if version is None:
        return versions[-1]
    if not 1 <= version <= len(versions):
        raise ApiError(404, f"agent {agent_id!r} has no version {version}.")
    return versions[version - 1]


def is_agent_archived(emulator: Emulator, agent_id: str) -> bool:
    """Return True when the agent has been archived (404 when unknown)."""
    return get_agent_snapshot(emulator, agent_id).get("archived_at") is not None


def get_environment(emulator: Emulator, environment_id: str) -> dict[str, Any]:
    """Return the stored environment.

    Raises:
        ApiError: 404 (``environment_not_found``) when unknown or deleted.
    """
    env = emulator.store.environments.get(environment_id)
    if env is None:
        raise ApiError(404, f"environment {environment_id!r} not found.", error_code="environment_not_found")
    return env


def config_of(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """Return the part of a snapshot that an update can change (for no-op detection)."""
    return {k: v for k, v in snapshot.items() if k not in _NON_CONFIG_KEYS}


def resolve_model(
    value: str | Mapping[str, Any], previous: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Resolve a model string or object into the response's ``model`` object.

    On update (``previous`` given) an omitted ``effort`` keeps the stored one; every other
    omitted key takes its default, since a model object replaces the stored one whole.
    """
    spec: dict[str, Any] = {"id": value} if isinstance(value, str) else dict(value)
    if not spec.get("id"):
        raise ApiError(400, "model.id must be a non-empty string.")
    if "effort" in spec and spec["effort"] is not None:
        effort = spec["effort"]
        level = effort if isinstance(effort, str) else effort["type"]
    elif "effort" not in spec and previous is not None and previous.get("effort"):
        level = previous["effort"]["type"]
    else:
        level = DEFAULT_EFFORT
    return {
        "id": spec["id"],
        "effort": {"type": level},
        "inference_geo": spec.get("inference_geo"),
        "speed": spec.get("speed") or "standard",
    }


def resolve_tools(tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Validate the ``tools`` array and return it fully resolved (defaults filled in).

    Raises:
        ApiError: 400 on duplicate toolsets or names, bad custom tool names, misplaced tool
            options, or more than 256 tools in total.
    """
    resolved: list[dict[str, Any]] = []
    custom_names: set[str] = set()
    mcp_names: set[str] = set()
    count = 0
    for tool in tools:
        kind = tool["type"]
        if kind == "custom":
            name = tool["name"]
            if not _CUSTOM_TOOL_NAME.match(name):
                raise ApiError(400, f"custom tool name {name!r} must be 1-128 letters, digits, '_' or '-'.")
            if name in custom_names or name in BUILTIN_TOOLS:
                raise ApiError(400, f"tool name {name!r} is used more than once.")
            custom_names.add(name)
            resolved.append(
                {
                    "type": "custom",
                    "name": name,
                    "description": tool["description"],
                    "input_schema": dict(tool["input_schema"]),
                }
            )
            count += 1
        elif kind == "agent_toolset_20260401":
            if any(t["type"] == kind for t in resolved):
                raise ApiError(400, "tools may contain at most one agent_toolset_20260401.")
            resolved.append(_resolve_toolset(tool, "always_allow", builtin=True))
            count += len(BUILTIN_TOOLS)
        else:
            server = tool["mcp_server_name"]
            if server in mcp_names:
                raise ApiError(400, f"mcp_server_name {server!r} has more than one mcp_toolset.")
            mcp_names.add(server)
            toolset = _resolve_toolset(tool, "always_ask", builtin=False)
            resolved.append(toolset)
            count += max(1, len(toolset["configs"]))
    if count > MAX_TOOLS:
        raise ApiError(400, f"an agent may have at most {MAX_TOOLS} tools across all toolsets, got {count}.")
    return resolved


def _resolve_toolset(tool: Mapping[str, Any], default_policy: str, *, builtin: bool) -> dict[str, Any]:
    default = tool.get("default_config") or {}
    enabled = default.get("enabled")
    policy = default.get("permission_policy")
    default_config: dict[str, Any] = {
        "enabled": True if enabled is None else enabled,
        "permission_policy": dict(policy) if policy else {"type": default_policy},
    }
    configs: list[dict[str, Any]] = []
    seen: set[str] = set()
    for config in tool.get("configs") or []:
        name = config["name"]
        if name in seen:
            raise ApiError(400, f"tool {name!r} is configured more than once in one toolset.")
        seen.add(name)
        item: dict[str, Any] = {
            "name": name,
            "enabled": default_config["enabled"] if config.get("enabled") is None else config["enabled"],
            "permission_policy": dict(config.get("permission_policy") or default_config["permission_policy"]),
        }
        if builtin:
            if config.get("type") not in (None, name):
                raise ApiError(400, f"tool config type {config['type']!r} must equal its name {name!r}.")
            item = {"type": name, **item, **_builtin_options(name, config)}
        configs.append(item)
    out: dict[str, Any] = {"type": tool["type"], "default_config": default_config, "configs": configs}
    if not builtin:
        out["mcp_server_name"] = tool["mcp_server_name"]
    return out


def _builtin_options(name: str, config: Mapping[str, Any]) -> dict[str, Any]:
    allowed = {"web_fetch": {"allowed_domains", "blocked_domains", "max_content_tokens", "url_sources"}}
    allowed["web_search"] = {"allowed_domains", "blocked_domains", "user_location"}
    options = {
        k: v
        for k, v in config.items()
        if k not in ("type", "name", "enabled", "permission_policy") and v is not None
    }
    extra = set(options) - allowed.get(name, set())
    if extra:
        raise ApiError(400, f"tool {name!r} does not take {', '.join(sorted(extra))}.")
    if "allowed_domains" in options and "blocked_domains" in options:
        raise ApiError(400, f"tool {name!r} takes allowed_domains or blocked_domains, not both.")
    for key in ("allowed_domains", "blocked_domains"):
        if key in options and not 1 <= len(options[key]) <= 64:
            raise ApiError(400, f"{key} must hold 1 to 64 entries.")
    return options


def check_mcp_servers(
    mcp_servers: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Validate MCP servers against the resolved tools; return them as stored.

    Raises:
        ApiError: 400 on more than 20 servers, duplicate names, a server no ``mcp_toolset``
            references, or a toolset naming an unknown server.
    """
    if len(mcp_servers) > MAX_MCP_SERVERS:
        raise ApiError(400, f"an agent may have at most {MAX_MCP_SERVERS} MCP servers.")
    names = [s["name"] for s in mcp_servers]
    if len(set(names)) != len(names):
        raise ApiError(400, "mcp_servers names must be unique.")
    referenced = {t["mcp_server_name"] for t in tools if t["type"] == "mcp_toolset"}
    unreferenced = sorted(set(names) - referenced)
    if unreferenced:
        raise ApiError(400, f"mcp_servers {unreferenced} are not referenced by any mcp_toolset in tools.")
    unknown = sorted(referenced - set(names))
    if unknown:
        raise ApiError(400, f"mcp_toolset references unknown mcp_servers {unknown}.")
    return [{"type": "url", "name": s["name"], "url": s["url"]} for s in mcp_servers]


def resolve_skills(skills: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Return skills with ``version`` always a string (``"latest"`` when omitted)."""
    if len(skills) > MAX_SKILLS:
        raise ApiError(400, f"an agent may have at most {MAX_SKILLS} skills.")
    return [
        {
            "type": s["type"],
            "skill_id": s["skill_id"],
            "version": "latest" if s.get("version") is None else str(s["version"]),
        }
        for s in skills
    ]


def resolve_execution_identity(value: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return the stored execution identity (``service_account`` for null or omitted)."""
    if value is None or value["type"] == "service_account":
        return {"type": "service_account"}
    return {"type": "aws_role", "role_arn": value["role_arn"]}


def resolve_multiagent(
    emulator: Emulator,
    value: Mapping[str, Any] | None,
    *,
    self_ref: dict[str, Any],
    previous: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Resolve a multiagent configuration: roster entries become ``{type, id, version}``.

    Args:
        emulator: The emulator (to look referenced agents up).
        value: The request's ``multiagent`` (``None`` for a single-threaded agent).
        self_ref: ``{"type": "agent", "id", "version"}`` of the agent being written.
        previous: The stored value; a ``multiagent_20261001`` update merges into it level by level.
    """
    if value is None:
        return None
    if value["type"] == "coordinator":
        entries = value["agents"]
        if not 1 <= len(entries) <= MAX_ROSTER:
            raise ApiError(400, f"multiagent.agents must hold 1 to {MAX_ROSTER} entries.")
        roster = [_resolve_roster_entry(emulator, e, self_ref, allow_advisor=True) for e in entries]
        _check_distinct(roster)
        return {"type": "coordinator", "agents": roster}
    base = dict(previous) if previous and previous.get("type") == "multiagent_20261001" else {}
    out: dict[str, Any] = {"type": "multiagent_20261001"}
    for member, default in (("advisor", "disabled"), ("subagents", "enabled"), ("workflows", "enabled")):
        if member not in value:
            sent = base.get(member) or {"type": default}
            stored: Mapping[str, Any] | None = None
        else:
            sent = value[member] or {"type": default}
            stored = base.get(member)
        out[member] = _resolve_member(emulator, member, sent, stored, self_ref)
    return out


def _resolve_member(
    emulator: Emulator,
    member: str,
    sent: Mapping[str, Any],
    stored: Mapping[str, Any] | None,
    self_ref: dict[str, Any],
) -> dict[str, Any]:
    merged = {**stored, **sent} if stored and stored.get("type") == sent["type"] else dict(sent)
    if merged["type"] == "disabled":
        return {"type": "disabled"}
    if member == "advisor":
        if not merged.get("model"):
            raise ApiError(400, "an enabled multiagent.advisor needs its model.")
        return {"type": "enabled", "model": merged["model"]}
    inline = merged.get("inline_agents") or {"type": "enabled"}
    predefined = [
        _resolve_roster_entry(emulator, e, self_ref, allow_advisor=False)
        for e in merged.get("predefined_agents") or []
    ]
    if len(predefined) > MAX_ROSTER:
        raise ApiError(400, f"predefined_agents may hold at most {MAX_ROSTER} agents.")
    _check_distinct(predefined)
    if inline["type"] == "disabled" and not predefined:
        raise ApiError(400, f"multiagent.{member} with inline_agents disabled needs predefined_agents.")
    return {"type": "enabled", "inline_agents": {"type": inline["type"]}, "predefined_agents": predefined}


def _resolve_roster_entry(
    emulator: Emulator, entry: str | Mapping[str, Any], self_ref: dict[str, Any], *, allow_advisor: bool
) -> dict[str, Any]:
    if isinstance(entry, str):
        entry = {"type": "agent", "id": entry}
    if entry["type"] == "self":
        return dict(self_ref)
    if entry["type"] == "advisor":
        if not allow_advisor:
            raise ApiError(400, "advisor entries are only allowed in a coordinator roster.")
        return {"type": "advisor", "model": entry["model"]}
    if entry["id"] == self_ref["id"]:
        return dict(self_ref)
    try:
        target = get_agent_snapshot(emulator, entry["id"], entry.get("version"))
    except ApiError as exc:
        raise ApiError(400, f"multiagent references unknown agent {entry['id']!r}.") from exc
    if target.get("archived_at") is not None:
        raise ApiError(400, f"multiagent references archived agent {entry['id']!r}.")
    if target.get("multiagent") is not None:
        raise ApiError(400, f"agent {entry['id']!r} has multiagent set itself (depth limit 1).")
    return {"type": "agent", "id": target["id"], "version": target["version"]}


def _check_distinct(roster: list[dict[str, Any]]) -> None:
    ids = [r["id"] for r in roster if r["type"] == "agent"]
    if len(set(ids)) != len(ids):
        raise ApiError(400, "multiagent roster entries must reference distinct agents.")


def check_snapshot(snapshot: dict[str, Any]) -> dict[str, Any]:
    """Validate a resolved snapshot with the SDK's own model before storing it.

    Pass-through options (``url_sources``, ``user_location``, input schemas) are only accepted
    in the shapes the response model can carry, so the emulator never answers an invalid body.

    Raises:
        ApiError: 400 naming the offending field.
    """
    try:
        BetaManagedAgentsAgent.model_validate(snapshot)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ApiError(400, f"{where}: {first['msg']}") from exc
    return snapshot
