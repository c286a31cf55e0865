"""The declarative agent spec: pydantic models, YAML loading, API limits and the spec fingerprint.

The YAML keys mirror ``client.beta.agents.create(...)``; an ``environment:`` section mirrors
``client.beta.environments.create(...)``. Every limit the API documents is checked here, before any
request, so a bad spec fails with the field's path and the fix instead of a 400 halfway through a
deployment.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from .exceptions import ConfigurationError, SpecValidationError, UnknownCustomToolError
from .keys import BLOCK_KEY, FINGERPRINT_KEY, PREFIX
from .tool_names import BUILTIN_TOOL_NAMES, CUSTOM_TOOL_NAME

MAX_TOOLS = 256
MAX_MCP_SERVERS = 20
MAX_SKILLS = 20
MAX_DOMAINS = 64
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
RESERVED_METADATA_PREFIX = PREFIX
RESERVED_METADATA_KEYS = (FINGERPRINT_KEY, BLOCK_KEY)
MAX_CALLABLE_AGENTS = 20
BLOCK_NAME = re.compile(r"^[a-z0-9-]+$")
"""What a Prefect block name may hold here: lowercase letters, digits and dashes."""

BuiltinToolName = Literal["bash", "edit", "read", "write", "glob", "grep", "web_fetch", "web_search"]


class _SpecModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PermissionPolicy(_SpecModel):
    """Whether a tool call runs at once (``always_allow``), waits for confirmation, or is judged."""

    type: Literal["always_allow", "always_ask", "auto"]


class ToolsetDefaults(_SpecModel):
    """A toolset's ``default_config``: applies to every tool of the set without its own config."""

    enabled: bool | None = None
    permission_policy: PermissionPolicy | None = None


class BuiltinToolConfig(_SpecModel):
    """One entry of the agent toolset's ``configs`` (a built-in tool)."""

    name: BuiltinToolName
    enabled: bool | None = None
    permission_policy: PermissionPolicy | None = None
    allowed_domains: list[str] | None = None
    blocked_domains: list[str] | None = None
    max_content_tokens: int | None = Field(default=None, ge=1)
    url_sources: dict[str, Any] | None = None
    user_location: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _check_options(self) -> Self:
        web_only = {"allowed_domains", "blocked_domains"} & self.model_fields_set
        if web_only and self.name not in ("web_fetch", "web_search"):
            raise ValueError(f"{sorted(web_only)} only apply to web_fetch and web_search; remove them.")
        if ({"max_content_tokens", "url_sources"} & self.model_fields_set) and self.name != "web_fetch":
            raise ValueError("max_content_tokens and url_sources only apply to web_fetch; remove them.")
        if "user_location" in self.model_fields_set and self.name != "web_search":
            raise ValueError("user_location only applies to web_search; remove it.")
        if self.allowed_domains is not None and self.blocked_domains is not None:
            raise ValueError("set allowed_domains or blocked_domains, not both.")
        for domains in (self.allowed_domains, self.blocked_domains):
            if domains is not None and len(domains) > MAX_DOMAINS:
                raise ValueError(f"at most {MAX_DOMAINS} domains are allowed, got {len(domains)}.")
        return self


class AgentToolset(_SpecModel):
    """The built-in tools (``agent_toolset_20260401``) with per-tool enablement and permissions."""

    type: Literal["agent_toolset_20260401"]
    default_config: ToolsetDefaults | None = None
    configs: list[BuiltinToolConfig] | None = None

    @field_validator("configs")
    @classmethod
    def _unique_names(cls, configs: list[BuiltinToolConfig] | None) -> list[BuiltinToolConfig] | None:
        names = [c.name for c in configs or []]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"tools {dupes} are configured more than once; keep one entry per tool.")
        return configs


class McpToolConfig(_SpecModel):
    """One entry of an MCP toolset's ``configs``."""

    name: str = Field(min_length=1)
    enabled: bool | None = None
    permission_policy: PermissionPolicy | None = None


class McpToolset(_SpecModel):
    """The tools of one MCP server (declared under ``mcp_servers``)."""

    type: Literal["mcp_toolset"]
    mcp_server_name: str = Field(min_length=1)
    default_config: ToolsetDefaults | None = None
    configs: list[McpToolConfig] | None = None


class CustomToolInputSchema(BaseModel):
    """A custom tool's JSON schema; extra JSON-schema keywords are kept as written."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    type: Literal["object"]
    properties: dict[str, Any] | None = None
    required: list[str] | None = None


class CustomTool(_SpecModel):
    """A tool your own code executes when the agent calls it."""

    type: Literal["custom"]
    name: str
    description: str = Field(min_length=1)
    input_schema: CustomToolInputSchema

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        if not CUSTOM_TOOL_NAME.match(name):
            raise ValueError(
                f"custom tool name {name!r} must be 1-128 characters of letters, digits, '_' or '-'."
            )
        if name in BUILTIN_TOOL_NAMES:
            raise ValueError(f"custom tool name {name!r} is a built-in tool's name; rename it.")
        return name


Tool = Annotated[AgentToolset | McpToolset | CustomTool, Field(discriminator="type")]


class McpServer(_SpecModel):
    """A remote MCP server; its auth lives in a vault, never here."""

    type: Literal["url"] = "url"
    name: str = Field(min_length=1, max_length=255)
    url: str = Field(min_length=1)
    vault: str | None = Field(
        default=None,
        min_length=1,
        description="The vault holding this server's credential (matched to the server by its exact "
        "URL): its id (vlt_...) or display name. deploy_agent checks it and saves it on the block; "
        "not part of the agent.",
    )


class Skill(_SpecModel):
    """An Anthropic skill (``skill_id`` like ``xlsx``) or a custom one (``skill_...``)."""

    type: Literal["anthropic", "custom"]
    skill_id: str = Field(min_length=1)
    version: str | None = None

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, version: object) -> object:
        return str(version) if isinstance(version, int) else version


class ModelConfig(_SpecModel):
    """The object form of ``model``."""

    id: str = Field(min_length=1)
    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = None
    inference_geo: str | None = None
    speed: Literal["standard", "fast"] | None = None


def _check_metadata(metadata: dict[str, str], *, reserved_slots: int) -> dict[str, str]:
    limit = MAX_METADATA_PAIRS - reserved_slots
    if len(metadata) > limit:
        raise ValueError(
            f"at most {limit} metadata pairs are allowed here ({MAX_METADATA_PAIRS} minus "
            f"{reserved_slots} used by deploy_agent), got {len(metadata)}; remove some."
        )
    for key, value in metadata.items():
        if not key or len(key) > MAX_METADATA_KEY:
            raise ValueError(f"metadata key {key[:80]!r} must be 1-{MAX_METADATA_KEY} characters long.")
        if len(value) > MAX_METADATA_VALUE:
            raise ValueError(
                f"metadata value of {key!r} is {len(value)} characters; shorten it to at most "
                f"{MAX_METADATA_VALUE}."
            )
        if key.startswith(RESERVED_METADATA_PREFIX):
            raise ValueError(f"metadata key {key!r} is reserved for deploy_agent; rename it.")
    return metadata


class CallableAgent(_SpecModel):
    """One agent a coordinator can call; each call runs in its own session thread.

    Give ``spec`` to have ``deploy_agent`` deploy the callee first (to ``block``), ``block`` alone
    for a callee deployed before (it is called at the version its block pins), or ``type: self``
    for another thread of the coordinator itself.
    """

    type: Literal["agent", "self"] = "agent"
    spec: str | None = Field(
        default=None,
        min_length=1,
        description="The callee's spec file, relative to this spec's file (inside the input roots). "
        "It may not have callable agents of its own (one level of delegation).",
    )
    block: str | None = Field(
        default=None,
        min_length=1,
        description="The callee's ManagedAgent block: with spec, where deploy_agent saves it (default: "
        "the callee's agent name, lowercased with dashes); alone, a callee deployed before.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if self.type == "self" and (self.spec or self.block):
            raise ValueError("a 'type: self' entry takes no spec or block; remove them.")
        if self.type == "agent" and not (self.spec or self.block):
            raise ValueError("give the callee's spec file (spec:) or its deployed block (block:).")
        if self.block is not None and not BLOCK_NAME.match(self.block):
            raise ValueError(
                f"block {self.block!r} is not a valid block name; use lowercase letters, digits and dashes."
            )
        return self

    def label(self) -> str:
        """How reports and errors name the entry: ``self``, ``block:<name>`` or ``spec:<path>``."""
        if self.type == "self":
            return "self"
        return f"spec:{self.spec}" if self.spec else f"block:{self.block}"


class MultiagentSpec(_SpecModel):
    """Callable agents: the agent coordinates and delegates work to them (``multiagent`` of
    ``agents.create``, the ``coordinator`` form, with callees named by spec or block)."""

    type: Literal["coordinator"] = "coordinator"
    agents: list[CallableAgent] = Field(min_length=1, max_length=MAX_CALLABLE_AGENTS)

    @field_validator("agents")
    @classmethod
    def _distinct(cls, agents: list[CallableAgent]) -> list[CallableAgent]:
        labels = [a.label() for a in agents]
        blocks = [a.block for a in agents if a.block]
        dupes = sorted(
            {x for x in labels if labels.count(x) > 1} | {f"block:{b}" for b in blocks if blocks.count(b) > 1}
        )
        if dupes:
            raise ValueError(f"callable agents {dupes} are listed more than once; keep one entry each.")
        return agents


class AgentSpec(_SpecModel):
    """The agent: the arguments of ``client.beta.agents.create``."""

    name: str = Field(min_length=1, max_length=256)
    model: str | ModelConfig
    system: str | None = Field(default=None, max_length=100_000)
    description: str | None = Field(default=None, max_length=2048)
    tools: list[Tool] = Field(
        default_factory=list,
        description="Toolsets and custom tools. The name of a registered custom tool (see "
        "managed_agents_core.custom_tools.custom_tool), or from Python the function itself, becomes a custom tool "
        "whose schema comes from the function's type hints and docstring.",
    )
    mcp_servers: list[McpServer] = Field(
        default_factory=list, max_length=MAX_MCP_SERVERS, validate_default=True
    )
    skills: list[Skill] = Field(default_factory=list, max_length=MAX_SKILLS)
    metadata: dict[str, str] = Field(default_factory=dict)
    multiagent: MultiagentSpec | None = Field(
        default=None,
        description="Agents this one can call (a coordinator). deploy_agent deploys the callees named by "
        "spec first and calls every callee at the version its block pins.",
    )
    _roster: list[dict[str, Any]] | None = PrivateAttr(default=None)

    @field_validator("tools", mode="before")
    @classmethod
    def _functions_as_custom_tools(cls, tools: Any) -> Any:
        """Registered tool names and Python functions become custom tools (schema from hints and
        docstring); a name that is not registered is an :class:`UnknownCustomToolError`."""
        if not isinstance(tools, list):
            return tools
        from .custom_tools import custom_tool_definition  # the SDK's tool helpers load lazily

        return [
            custom_tool_definition(t)
            if isinstance(t, str) or (callable(t) and not isinstance(t, BaseModel))
            else t
            for t in tools
        ]

    @field_validator("model")
    @classmethod
    def _model_not_blank(cls, model: str | ModelConfig) -> str | ModelConfig:
        if isinstance(model, str) and not model.strip():
            raise ValueError("model must name a Claude model, for example 'claude-opus-4-8'.")
        return model

    @field_validator("metadata")
    @classmethod
    def _metadata_limits(cls, metadata: dict[str, str]) -> dict[str, str]:
        return _check_metadata(metadata, reserved_slots=len(RESERVED_METADATA_KEYS))

    @field_validator("tools")
    @classmethod
    def _tool_limits(cls, tools: list[AgentToolset | McpToolset | CustomTool]) -> list[Any]:
        if sum(isinstance(t, AgentToolset) for t in tools) > 1:
            raise ValueError("at most one agent_toolset_20260401 entry is allowed; merge them.")
        servers = [t.mcp_server_name for t in tools if isinstance(t, McpToolset)]
        dupes = sorted({s for s in servers if servers.count(s) > 1})
        if dupes:
            raise ValueError(f"MCP servers {dupes} have more than one mcp_toolset; merge them.")
        names = [t.name for t in tools if isinstance(t, CustomTool)]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"custom tools {dupes} are defined more than once; rename or remove them.")
        count = tool_count(tools)
        if count > MAX_TOOLS:
            raise ValueError(
                f"the agent has {count} tools across all toolsets; the API allows at most {MAX_TOOLS}. "
                "Remove tools or MCP tool configs."
            )
        return tools

    @field_validator("skills")
    @classmethod
    def _unique_skills(cls, skills: list[Skill]) -> list[Skill]:
        ids = [s.skill_id for s in skills]
        dupes = sorted({s for s in ids if ids.count(s) > 1})
        if dupes:
            raise ValueError(f"skills {dupes} are listed more than once; keep one entry each.")
        return skills

    @field_validator("mcp_servers")
    @classmethod
    def _mcp_servers_referenced(cls, servers: list[McpServer], info: ValidationInfo) -> list[McpServer]:
        declared = [s.name for s in servers]
        dupes = sorted({n for n in declared if declared.count(n) > 1})
        if dupes:
            raise ValueError(f"names {dupes} are used more than once; MCP server names must be unique.")
        tools = info.data.get("tools")
        if tools is None:  # tools failed validation; that error is reported on its own
            return servers
        used = {t.mcp_server_name for t in tools if isinstance(t, McpToolset)}
        unreferenced = sorted(set(declared) - used)
        if unreferenced:
            raise ValueError(
                f"{unreferenced} are not referenced by any tool; add "
                "{type: mcp_toolset, mcp_server_name: <name>} to tools for each, or remove the server."
            )
        undeclared = sorted(used - set(declared))
        if undeclared:
            raise ValueError(
                f"tools has mcp_toolset entries for {undeclared}, which are not declared here; declare "
                "each as {type: url, name: <name>, url: <url>} or fix the tool's mcp_server_name."
            )
        return servers

    def with_roster(self, roster: list[dict[str, Any]]) -> Self:
        """Return a copy whose ``multiagent`` is sent as these resolved callees.

        Args:
            roster: The ``multiagent.agents`` entries of ``agents.create``, in the spec's order:
                ``{"type": "agent", "id": ..., "version": ...}`` or ``{"type": "self"}``.
        """
        if self.multiagent is None or len(roster) != len(self.multiagent.agents):
            raise ConfigurationError("the roster must resolve each of the spec's callable agents, in order.")
        copy = self.model_copy()
        copy._roster = [dict(entry) for entry in roster]
        return copy

    def agent_params(self) -> dict[str, Any]:
        """Return the keyword arguments for ``agents.create`` (unset optional fields left out; an
        MCP server's ``vault`` is the sessions' business, not the agent's; callable agents as
        resolved by :meth:`with_roster`).

        Raises:
            ConfigurationError: The spec has callable agents that were not resolved yet.
        """
        params = self.model_dump(
            mode="json",
            exclude_none=True,
            include=set(AgentSpec.model_fields) - {"multiagent"},
            exclude={"mcp_servers": {"__all__": {"vault"}}},
        )
        if self.multiagent is not None:
            if self._roster is None:
                raise ConfigurationError(
                    "The spec's callable agents are not resolved to agent ids and versions yet; "
                    "deploy it with deploy_agent, which deploys them first."
                )
            params["multiagent"] = {"type": self.multiagent.type, "agents": self._roster}
        return params

    def update_params(self) -> dict[str, Any]:
        """Return the keyword arguments for ``agents.update`` that make the agent equal this spec.

        Unlike create, fields the spec leaves empty are sent as ``None`` so the update clears them
        (the API keeps omitted fields). Metadata is a patch and is completed by the caller.
        """
        params = self.agent_params()
        for clearable in ("system", "description", "multiagent"):
            params.setdefault(clearable, None)
        return params

    def fingerprint(self) -> str:
        """Return the sha256 of the canonical JSON of :meth:`agent_params` (the agent part only,
        callees by id and pinned version: a callee's new pin changes its coordinator's fingerprint)."""
        return canonical_sha256(self.agent_params())


class UnrestrictedNetworking(_SpecModel):
    """Outbound network access to any host."""

    type: Literal["unrestricted"]


class LimitedNetworking(_SpecModel):
    """Outbound network access only to the listed hosts."""

    type: Literal["limited"]
    allowed_hosts: list[str] = Field(default_factory=list)
    allow_mcp_servers: bool = False
    allow_package_managers: bool = False


class Packages(_SpecModel):
    """Packages installed in the container, per package manager."""

    type: Literal["packages"] = "packages"
    apt: list[str] = Field(default_factory=list)
    cargo: list[str] = Field(default_factory=list)
    gem: list[str] = Field(default_factory=list)
    go: list[str] = Field(default_factory=list)
    npm: list[str] = Field(default_factory=list)
    pip: list[str] = Field(default_factory=list)

    def any(self) -> bool:
        """Return True when at least one package is listed."""
        return any((self.apt, self.cargo, self.gem, self.go, self.npm, self.pip))


class CloudConfig(_SpecModel):
    """An Anthropic-hosted container."""

    type: Literal["cloud"]
    networking: Annotated[UnrestrictedNetworking | LimitedNetworking, Field(discriminator="type")] = Field(
        default_factory=lambda: UnrestrictedNetworking(type="unrestricted")
    )
    packages: Packages = Field(default_factory=Packages)

    @model_validator(mode="after")
    def _packages_need_package_managers(self) -> Self:
        net = self.networking
        if isinstance(net, LimitedNetworking) and self.packages.any() and not net.allow_package_managers:
            raise ValueError(
                "packages under limited networking need networking.allow_package_managers: true; "
                "set it or remove the packages."
            )
        return self


class SelfHostedConfig(_SpecModel):
    """A sandbox you run yourself."""

    type: Literal["self_hosted"]


class EnvironmentSpec(_SpecModel):
    """The environment: the arguments of ``client.beta.environments.create``."""

    name: str = Field(min_length=1, max_length=256)
    description: str | None = None
    config: Annotated[CloudConfig | SelfHostedConfig, Field(discriminator="type")] = Field(
        default_factory=lambda: CloudConfig(type="cloud")
    )
    metadata: dict[str, str] = Field(default_factory=dict)

    @field_validator("metadata")
    @classmethod
    def _metadata_limits(cls, metadata: dict[str, str]) -> dict[str, str]:
        return _check_metadata(metadata, reserved_slots=0)

    def environment_params(self) -> dict[str, Any]:
        """Return the keyword arguments for ``environments.create`` with every default filled in.

        The config is complete (networking and all package lists), so it compares equal to the
        ``config`` of an environment the API created from it.
        """
        return self.model_dump(mode="json", exclude_none=True)


class AgentDeploymentSpec(AgentSpec):
    """An agent spec plus the environment its sessions run in: what ``deploy_agent`` deploys.

    Examples:
        ```python
        from blocks import AgentDeploymentSpec

        spec = AgentDeploymentSpec.from_yaml("flows/specs/example-agent.yaml")
        print(spec.fingerprint())
        ```
    """

    environment: EnvironmentSpec
    vaults: list[str] = Field(
        default_factory=list,
        description="Further vaults the sessions get, by id (vlt_...) or display name: those holding "
        "environment-variable secrets, which no MCP server names.",
    )

    @field_validator("vaults")
    @classmethod
    def _vault_refs_not_blank(cls, vaults: list[str]) -> list[str]:
        if any(not ref.strip() for ref in vaults):
            raise ValueError("vault references must not be blank; give a vault id (vlt_...) or display name.")
        return vaults

    def vault_refs(self) -> list[str]:
        """Every vault the spec names (its MCP servers' and ``vaults``), once each, in order."""
        named = [server.vault for server in self.mcp_servers if server.vault] + self.vaults
        return list(dict.fromkeys(named))

    @classmethod
    def from_yaml(cls, path: str | Path) -> AgentDeploymentSpec:
        """Load and validate a spec file.

        Args:
            path: A YAML file whose keys mirror ``agents.create`` plus an ``environment:`` section.

        Raises:
            SpecValidationError: The file is missing, is not YAML, or breaks a rule.
        """
        source = Path(path)
        try:
            data = yaml.safe_load(source.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SpecValidationError(
                f"Cannot read spec file {source}: {exc.strerror}. Check the path."
            ) from None
        except yaml.YAMLError as exc:
            raise SpecValidationError(f"Spec file {source} is not valid YAML: {exc}") from None
        if not isinstance(data, Mapping):
            raise SpecValidationError(
                f"Spec file {source} must hold a mapping of agents.create keys plus 'environment:'."
            )
        return cls.parse(_callee_specs_beside(data, source.parent), source=str(source))

    @classmethod
    def parse(cls, data: Mapping[str, Any], *, source: str = "spec") -> AgentDeploymentSpec:
        """Validate a mapping, turning pydantic's errors into one :class:`SpecValidationError`.

        Args:
            data: The spec as plain data.
            source: Where it came from, for the message.

        Raises:
            SpecValidationError: With one line per problem: the field's path, what is wrong, the fix.
            UnknownCustomToolError: ``tools`` names a custom tool that is not registered, or an
                import path outside the allowed tool modules.
        """
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            for error in exc.errors():
                cause = (error.get("ctx") or {}).get("error")
                if isinstance(cause, UnknownCustomToolError):  # keep its own type and message
                    raise UnknownCustomToolError(f"Invalid agent spec ({source}): {cause}") from None
            raise spec_error(exc, source) from None


def _callee_specs_beside(data: Mapping[str, Any], folder: Path) -> Mapping[str, Any]:
    """Read the relative ``spec:`` paths of callable agents from the spec file's folder."""
    multiagent = data.get("multiagent")
    if not isinstance(multiagent, Mapping) or not isinstance(multiagent.get("agents"), list):
        return data
    agents = [
        {**entry, "spec": str(folder / entry["spec"])}
        if isinstance(entry, Mapping)
        and isinstance(entry.get("spec"), str)
        and not Path(entry["spec"]).is_absolute()
        else entry
        for entry in multiagent["agents"]
    ]
    return {**data, "multiagent": {**multiagent, "agents": agents}}


def tool_count(tools: list[AgentToolset | McpToolset | CustomTool]) -> int:
    """Count tools the way the 256-tool limit does (decision: an MCP toolset counts its configs, at least 1).

    Args:
        tools: The spec's tools.
    """
    count = 0
    for tool in tools:
        if isinstance(tool, AgentToolset):
            count += len(BUILTIN_TOOL_NAMES)
        elif isinstance(tool, McpToolset):
            count += max(1, len(tool.configs or []))
        else:
            count += 1
    return count


def canonical_sha256(data: Any) -> str:
    """Return the sha256 hex digest of ``data`` as canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_TAGS = {"agent_toolset_20260401", "mcp_toolset", "custom", "cloud", "self_hosted", "unrestricted", "limited"}
_TYPE_SEGMENTS = {"str", "int", "bool", "float", "list", "dict", "ModelConfig"}


def field_path(loc: tuple[int | str, ...]) -> str:
    """Turn a pydantic error location into ``tools[2].name`` (union branch names dropped).

    Args:
        loc: The ``loc`` of one pydantic error.
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _TAGS or part in _TYPE_SEGMENTS or "[" in part:
            continue
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def _fix(error: ErrorDetails) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "add this required key."
    if kind == "extra_forbidden":
        return "remove this key or fix its spelling (keys mirror agents.create / environments.create)."
    if kind in ("string_too_long", "too_long"):
        return f"shorten it to at most {ctx.get('max_length')}."
    if kind in ("string_too_short", "too_short"):
        return f"give it at least {ctx.get('min_length')} character(s) or item(s)."
    if kind in ("literal_error", "enum"):
        return f"use one of {ctx.get('expected')}."
    if kind == "union_tag_invalid":
        return f"set 'type' to one of {ctx.get('expected_tags')}."
    if kind == "value_error":
        return ""  # our own messages already say what to do
    return "fix the value."


def _message(error: ErrorDetails) -> str:
    msg = error["msg"].removeprefix("Value error, ")
    if error["type"] == "union_tag_invalid":
        msg = f"unknown type {error.get('input', {}).get('type')!r}"
    fix = _fix(error)
    return f"{msg}; {fix}" if fix else msg


def spec_error(exc: ValidationError, source: str) -> SpecValidationError:
    """Build the :class:`SpecValidationError` for a failed validation.

    Args:
        exc: pydantic's error.
        source: Where the spec came from.
    """
    problems: dict[str, str] = {}
    for error in exc.errors():
        path = field_path(tuple(error["loc"]))
        if path not in problems:  # a str|object union reports one error per branch
            problems[path] = _message(error)
    lines = "\n".join(f"  - {path}: {msg}" for path, msg in problems.items())
    return SpecValidationError(f"Invalid agent spec ({source}), nothing was sent to the API:\n{lines}")
