"""Custom tools from Python functions: schema from hints and docstring, the registry, the spec
entry, results."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel, Field

from managed_agents_core.custom_tools import (
    as_runnable_tool,
    custom_tool,
    custom_tool_definition,
    error_content,
    lookup_custom_tool,
    register_custom_tool,
    result_content,
    run_tool,
    tool_registry,
)
from managed_agents_core.exceptions import SpecValidationError, UnknownCustomToolError
from managed_agents_core.spec import AgentSpec, CustomTool
from managed_agents_core.tool_calls import PendingToolCall


def lookup_ticket(ticket_id: str, include_history: bool = False) -> str:
    """Look up a support ticket.

    Args:
        ticket_id: The ticket's id, like T-1.
        include_history: Also return the ticket's history.
    """
    return f"{ticket_id}: open" + (" (history)" if include_history else "")


@custom_tool(name="unit_add")
async def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: First term.
        b: Second term.
    """
    return a + b


class Refund(BaseModel):
    """A refund request."""

    order_id: str = Field(description="The order to refund.")
    cents: int = Field(ge=1, description="Amount in cents.")


def refund(request: Refund) -> dict[str, Any]:
    """Refund an order.

    Args:
        request: What to refund.
    """
    return {"refunded": request.cents, "order": request.order_id}


def undocumented(x: int) -> int:
    return x


def _call(name: str, **input: Any) -> PendingToolCall:
    return PendingToolCall("sevt_1", "agent.custom_tool_use", name, input)


def test_schema_comes_from_type_hints_and_docstring() -> None:
    definition = custom_tool_definition(lookup_ticket)
    assert definition["type"] == "custom"
    assert definition["name"] == "lookup_ticket"
    assert definition["description"] == "Look up a support ticket."
    schema = definition["input_schema"]
    assert schema["type"] == "object"
    assert schema["required"] == ["ticket_id"]
    assert schema["properties"]["ticket_id"]["type"] == "string"
    assert schema["properties"]["ticket_id"]["description"] == "The ticket's id, like T-1."
    assert schema["properties"]["include_history"]["type"] == "boolean"
    assert schema["properties"]["include_history"]["default"] is False
    # The result is a valid spec entry.
    assert CustomTool.model_validate(definition).name == "lookup_ticket"


def test_a_pydantic_model_parameter_is_the_input_schema() -> None:
    definition = custom_tool_definition(refund)
    assert definition["description"] == "Refund an order."
    schema = definition["input_schema"]
    assert set(schema["properties"]) == {"order_id", "cents"}
    assert sorted(schema["required"]) == ["cents", "order_id"]
    tool = as_runnable_tool(refund)
    content = asyncio.run(run_tool(tool, _call("refund", order_id="O-7", cents=250)))
    assert content == [{"type": "text", "text": '{"order": "O-7", "refunded": 250}'}]
    with pytest.raises(ValueError):  # the model validates the agent's input (cents >= 1)
        asyncio.run(run_tool(tool, _call("refund", order_id="O-7", cents=0)))


def test_registered_names_and_async_functions(monkeypatch: pytest.MonkeyPatch) -> None:
    assert lookup_custom_tool("unit_add").name == "unit_add"  # registered by the decorator
    assert custom_tool_definition("unit_add") == custom_tool_definition(add)
    tool = as_runnable_tool("unit_add")
    assert asyncio.run(run_tool(tool, _call("unit_add", a=2, b=3))) == [{"type": "text", "text": "5"}]
    # An import path is only looked up inside the allowed tool modules, and must be registered.
    with pytest.raises(UnknownCustomToolError, match="outside the allowed tool modules"):
        lookup_custom_tool(f"{__name__}:add")
    monkeypatch.setenv("MANAGED_AGENTS_TOOL_MODULES", __name__)
    assert lookup_custom_tool(f"{__name__}:add") is lookup_custom_tool("unit_add")
    with pytest.raises(UnknownCustomToolError, match="not a registered custom tool"):
        lookup_custom_tool(f"{__name__}:undocumented")


def test_unregistered_names_builtins_and_foreign_modules_are_refused() -> None:
    for reference in ("no_such_tool", "os:system", "subprocess.getoutput", "builtins:eval", "eval"):
        with pytest.raises(UnknownCustomToolError):
            lookup_custom_tool(reference)
    with pytest.raises(UnknownCustomToolError, match="builtin"):
        as_runnable_tool(print)
    with pytest.raises(SpecValidationError, match="built-in tool"):
        register_custom_tool(lookup_ticket, name="bash")


def test_a_taken_name_is_not_silently_replaced() -> None:
    def other(x: int) -> int:
        """Another function.

        Args:
            x: A number.
        """
        return x

    with pytest.raises(SpecValidationError, match="already registered"):
        register_custom_tool(other, name="unit_add")
    # Passed from Python, a function is used as given even when its name is taken by another.
    assert as_runnable_tool(other).name == "other"
    assert tool_registry([other])["other"].func is other


def test_undocumented_functions_and_duplicate_names_are_rejected() -> None:
    with pytest.raises(SpecValidationError, match="no description"):
        as_runnable_tool(undocumented)
    with pytest.raises(SpecValidationError, match="named 'unit_add'"):
        tool_registry([add, "unit_add"])


def test_agent_spec_accepts_functions_and_registered_names_in_tools() -> None:
    spec = AgentSpec.model_validate(
        {
            "name": "support",
            "model": "claude-opus-4-8",
            "tools": [{"type": "agent_toolset_20260401"}, lookup_ticket, "unit_add"],
        }
    )
    customs = [t for t in spec.tools if isinstance(t, CustomTool)]
    assert [t.name for t in customs] == ["lookup_ticket", "unit_add"]
    params = spec.agent_params()
    assert params["tools"][1]["input_schema"]["required"] == ["ticket_id"]
    # Same function, same fingerprint: deploy_agent stays idempotent (by object or by name).
    again = AgentSpec.model_validate({"name": "support", "model": "claude-opus-4-8", "tools": [add]})
    assert (
        again.fingerprint()
        == AgentSpec.model_validate(
            {"name": "support", "model": "claude-opus-4-8", "tools": ["unit_add"]}
        ).fingerprint()
    )


def test_a_spec_naming_an_import_path_gets_the_typed_error() -> None:
    from managed_agents_core.spec import AgentDeploymentSpec

    data = {
        "name": "support",
        "model": "claude-opus-4-8",
        "tools": ["os:system"],
        "environment": {"name": "env"},
    }
    with pytest.raises(UnknownCustomToolError, match="outside the allowed tool modules"):
        AgentDeploymentSpec.parse(data)


def test_results_and_errors_become_content_blocks() -> None:
    assert result_content("ok") == [{"type": "text", "text": "ok"}]
    assert result_content(None) is None
    assert result_content({"b": 1, "a": [2]}) == [{"type": "text", "text": '{"a": [2], "b": 1}'}]
    blocks = [{"type": "text", "text": "x"}]
    assert result_content(blocks) == blocks
    error = error_content(KeyError("T-404"))
    assert error[0]["type"] == "text"
    assert "KeyError" in error[0]["text"] and "T-404" in error[0]["text"]
