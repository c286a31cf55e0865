"""The declarative spec: YAML loading, API limits with field-naming errors, and the fingerprint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from anthropic.types.beta import agent_create_params, environment_create_params
from pydantic import TypeAdapter

from blocks import AgentDeploymentSpec, SpecValidationError
from managed_agents_core.spec import FINGERPRINT_KEY, MAX_TOOLS, tool_count

EXAMPLE = Path(__file__).resolve().parents[2] / "flows" / "specs" / "example-agent.yaml"


def base() -> dict[str, Any]:
    return {"name": "writer", "model": "claude-opus-4-8", "environment": {"name": "env"}}


def custom(name: str) -> dict[str, Any]:
    return {"type": "custom", "name": name, "description": "d", "input_schema": {"type": "object"}}


def errors_of(data: dict[str, Any]) -> str:
    with pytest.raises(SpecValidationError) as info:
        AgentDeploymentSpec.parse(data)
    return str(info.value)


def test_example_spec_loads_and_matches_the_sdk_create_params() -> None:
    spec = AgentDeploymentSpec.from_yaml(EXAMPLE)
    toolset = spec.agent_params()["tools"][0]
    assert toolset["type"] == "agent_toolset_20260401"
    configs = {c["name"]: c for c in toolset["configs"]}
    assert configs["web_fetch"]["enabled"] is False and configs["web_search"]["enabled"] is False
    assert {"read", "write", "bash"} <= set(configs)
    assert spec.environment.config.type == "cloud"
    # The params are exactly what the SDK's create TypedDicts accept (strict: no extra keys).
    TypeAdapter(agent_create_params.AgentCreateParams).validate_python(spec.agent_params(), strict=True)
    TypeAdapter(environment_create_params.EnvironmentCreateParams).validate_python(
        spec.environment.environment_params(), strict=True
    )


def test_environment_params_are_complete_so_they_compare_with_the_api() -> None:
    spec = AgentDeploymentSpec.parse(base())
    assert spec.environment.environment_params()["config"] == {
        "type": "cloud",
        "networking": {"type": "unrestricted"},
        "packages": {"type": "packages", "apt": [], "cargo": [], "gem": [], "go": [], "npm": [], "pip": []},
    }
    limited = AgentDeploymentSpec.parse(
        {
            **base(),
            "environment": {"name": "e", "config": {"type": "cloud", "networking": {"type": "limited"}}},
        }
    )
    assert limited.environment.environment_params()["config"]["networking"] == {
        "type": "limited",
        "allowed_hosts": [],
        "allow_mcp_servers": False,
        "allow_package_managers": False,
    }


def test_fingerprint_ignores_formatting_and_key_order(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    reordered = tmp_path / "reordered.yaml"
    lines = text.splitlines()
    # Move the top-level `model:` line to the end: same spec, different file.
    model_line = next(line for line in lines if line.startswith("model:"))
    reordered.write_text("\n".join([line for line in lines if line != model_line] + [model_line]) + "\n")
    assert (
        AgentDeploymentSpec.from_yaml(reordered).fingerprint()
        == AgentDeploymentSpec.from_yaml(EXAMPLE).fingerprint()
    )


def test_fingerprint_covers_the_agent_but_not_the_environment() -> None:
    one = AgentDeploymentSpec.parse(base())
    assert AgentDeploymentSpec.parse({**base(), "system": "x"}).fingerprint() != one.fingerprint()
    assert AgentDeploymentSpec.parse({**base(), "metadata": {"a": "b"}}).fingerprint() != one.fingerprint()
    other_env = {**base(), "environment": {"name": "other"}}
    assert AgentDeploymentSpec.parse(other_env).fingerprint() == one.fingerprint()
    assert len(one.fingerprint()) == 64


def test_update_params_clear_what_the_spec_left_out() -> None:
    params = AgentDeploymentSpec.parse(base()).update_params()
    assert params["system"] is None and params["description"] is None
    assert params["tools"] == [] and params["skills"] == [] and params["mcp_servers"] == []
    assert "environment" not in params


def test_mcp_servers_and_toolsets_that_match_are_valid() -> None:
    spec = AgentDeploymentSpec.parse(
        {
            **base(),
            "tools": [{"type": "mcp_toolset", "mcp_server_name": "linear", "configs": [{"name": "list"}]}],
            "mcp_servers": [{"type": "url", "name": "linear", "url": "https://mcp.linear.app/sse"}],
            "skills": [{"type": "anthropic", "skill_id": "xlsx", "version": 2}],
        }
    )
    assert spec.agent_params()["skills"] == [{"type": "anthropic", "skill_id": "xlsx", "version": "2"}]


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (
            {"tools": [{"type": "agent_toolset_20260401"}] + [custom(f"t{i}") for i in range(249)]},
            "tools",
            "at most 256",
        ),
        ({"tools": [custom("has space")]}, "tools[0].name", "letters, digits"),
        ({"tools": [custom("bash")]}, "tools[0].name", "built-in"),
        ({"tools": [custom("dup"), custom("dup")]}, "tools", "more than once"),
        (
            {"tools": [{"type": "agent_toolset_20260401"}, {"type": "agent_toolset_20260401"}]},
            "tools",
            "at most one",
        ),
        ({"tools": [{"type": "browser"}]}, "tools[0]", "set 'type'"),
        (
            {
                "tools": [
                    {
                        "type": "agent_toolset_20260401",
                        "configs": [{"name": "bash", "allowed_domains": ["a"]}],
                    }
                ]
            },
            "tools[0].configs[0]",
            "web_fetch",
        ),
        (
            {
                "tools": [
                    {
                        "type": "agent_toolset_20260401",
                        "configs": [
                            {"name": "web_fetch", "allowed_domains": ["a"], "blocked_domains": ["b"]}
                        ],
                    }
                ]
            },
            "tools[0].configs[0]",
            "not both",
        ),
        (
            {
                "tools": [
                    {
                        "type": "agent_toolset_20260401",
                        "configs": [{"name": "web_fetch", "allowed_domains": ["d"] * 65}],
                    }
                ]
            },
            "tools[0].configs[0]",
            "at most 64",
        ),
        (
            {"tools": [{"type": "agent_toolset_20260401", "configs": [{"name": "shell"}]}]},
            "tools[0].configs[0].name",
            "use one of",
        ),
        (
            {
                "tools": [
                    {
                        "type": "agent_toolset_20260401",
                        "configs": [{"name": "read", "permission_policy": {"type": "sometimes"}}],
                    }
                ]
            },
            "tools[0].configs[0].permission_policy.type",
            "always_ask",
        ),
        ({"mcp_servers": [{"name": "linear", "url": "https://x"}]}, "mcp_servers", "not referenced"),
        ({"tools": [{"type": "mcp_toolset", "mcp_server_name": "gh"}]}, "mcp_servers", "not declared"),
        (
            {
                "mcp_servers": [{"name": f"s{i}", "url": "u"} for i in range(21)],
                "tools": [{"type": "mcp_toolset", "mcp_server_name": f"s{i}"} for i in range(21)],
            },
            "mcp_servers",
            "at most 20",
        ),
        ({"skills": [{"type": "anthropic", "skill_id": f"s{i}"} for i in range(21)]}, "skills", "at most 20"),
        ({"metadata": {"k": "v" * 513}}, "metadata", "at most 512"),
        ({"metadata": {"k" * 65: "v"}}, "metadata", "1-64"),
        ({"metadata": {f"k{i}": "v" for i in range(15)}}, "metadata", "at most 14"),
        ({"metadata": {FINGERPRINT_KEY: "x"}}, "metadata", "reserved"),
        ({"name": ""}, "name", "at least 1"),
        ({"name": "n" * 257}, "name", "at most 256"),
        ({"model": "  "}, "model", "claude-opus"),
        ({"description": "d" * 2049}, "description", "at most 2048"),
        ({"temperature": 0.5}, "temperature", "remove this key"),
        (
            {
                "environment": {
                    "name": "e",
                    "config": {
                        "type": "cloud",
                        "networking": {"type": "limited"},
                        "packages": {"pip": ["x"]},
                    },
                }
            },
            "environment.config",
            "allow_package_managers",
        ),
        ({"environment": {"name": "e", "config": {"type": "docker"}}}, "environment.config", "set 'type'"),
    ],
)
def test_limits_name_the_field_and_the_fix(change: dict[str, Any], field: str, words: str) -> None:
    message = errors_of({**base(), **change})
    assert f"  - {field}: " in message
    assert words in message


def test_missing_required_keys_are_each_named() -> None:
    message = errors_of({"tools": []})
    for field in ("name", "model", "environment"):
        assert f"  - {field}: Field required; add this required key." in message


def test_tool_count_counts_toolsets_like_the_limit() -> None:
    spec = AgentDeploymentSpec.parse(
        {
            **base(),
            "tools": [
                {"type": "agent_toolset_20260401"},
                {"type": "mcp_toolset", "mcp_server_name": "a", "configs": [{"name": "x"}, {"name": "y"}]},
                custom("c"),
            ],
            "mcp_servers": [{"name": "a", "url": "u"}],
        }
    )
    assert tool_count(spec.tools) == 8 + 2 + 1 < MAX_TOOLS


def test_yaml_problems_are_spec_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecValidationError, match="Cannot read spec file"):
        AgentDeploymentSpec.from_yaml(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(SpecValidationError, match="not valid YAML"):
        AgentDeploymentSpec.from_yaml(broken)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just text\n")
    with pytest.raises(SpecValidationError, match="must hold a mapping"):
        AgentDeploymentSpec.from_yaml(scalar)
