"""Tool calls a session waits on (``requires_action``), and the answers the client gives.

Plain data shared by the stream engine (which finds the calls), the custom-tool dispatcher
(which answers ``agent.custom_tool_use``) and the approval form (which answers confirmations).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from anthropic.types.beta.sessions import (
    BetaManagedAgentsAgentCustomToolUseEvent,
    BetaManagedAgentsAgentMCPToolUseEvent,
    BetaManagedAgentsAgentToolUseEvent,
    BetaManagedAgentsUserToolConfirmationEventParams,
)

AgentToolUse = BetaManagedAgentsAgentToolUseEvent | BetaManagedAgentsAgentMCPToolUseEvent
"""A built-in or MCP tool call (these wait for confirmations)."""
ToolUseEvent = AgentToolUse | BetaManagedAgentsAgentCustomToolUseEvent
"""Any tool call of the agent."""

ToolCallKind = Literal["agent.tool_use", "agent.mcp_tool_use", "agent.custom_tool_use"]


def evaluation_reason(event: AgentToolUse) -> str:
    """Say why a tool call waits for a confirmation, from its ``evaluation`` (e.g. ``always_ask``).

    Args:
        event: An ``agent.tool_use`` / ``agent.mcp_tool_use`` event.
    """
    evaluation = event.evaluation
    if evaluation is None:
        permission = event.evaluated_permission
        return f"evaluated permission: {permission}" if permission else "needs a confirmation"
    if evaluation.type == "auto":
        # The auto verdict's shape is newer than the union's members agree on.
        verdict = getattr(evaluation, "evaluated_permission", None)
        code = getattr(verdict, "reason_code", None)
        return f"auto: {getattr(verdict, 'type', '?')}" + (f" ({code})" if code else "")
    return str(evaluation.type)


@dataclass(frozen=True)
class PendingToolCall:
    """One tool call the session waits on.

    Attributes:
        event_id: The ``sevt_`` id of the tool-use event (what the answer names).
        kind: The tool-use event type.
        name: The tool's name (``mcp_server.name`` is not joined: ``mcp_server`` says it).
        input: The call's input as the agent sent it.
        reason: Why it waits (the permission evaluation); empty for custom tools.
        mcp_server: The MCP server of an ``agent.mcp_tool_use``.
    """

    event_id: str
    kind: ToolCallKind
    name: str
    input: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    mcp_server: str | None = None

    @classmethod
    def from_event(cls, event: ToolUseEvent) -> PendingToolCall:
        """Build from an SDK tool-use event."""
        return cls(
            event_id=event.id,
            kind=event.type,
            name=event.name,
            input=dict(event.input or {}),
            reason=""
            if isinstance(event, BetaManagedAgentsAgentCustomToolUseEvent)
            else evaluation_reason(event),
            mcp_server=event.mcp_server_name
            if isinstance(event, BetaManagedAgentsAgentMCPToolUseEvent)
            else None,
        )

    @property
    def label(self) -> str:
        """``server.tool`` for MCP tools, else the tool name."""
        return f"{self.mcp_server}.{self.name}" if self.mcp_server else self.name

    @property
    def input_json(self) -> str:
        """The input as compact, sorted JSON (for forms and logs)."""
        return json.dumps(self.input, sort_keys=True, default=str)


@dataclass(frozen=True)
class ToolAnswer:
    """A verdict on one confirmation: ``allow``, or ``deny`` with a message for the model."""

    result: Literal["allow", "deny"]
    deny_message: str | None = None

    def event(self, tool_use_id: str) -> BetaManagedAgentsUserToolConfirmationEventParams:
        """The ``user.tool_confirmation`` event param for ``tool_use_id``."""
        param: BetaManagedAgentsUserToolConfirmationEventParams = {
            "type": "user.tool_confirmation",
            "tool_use_id": tool_use_id,
            "result": self.result,
        }
        if self.result == "deny" and self.deny_message:
            param["deny_message"] = self.deny_message
        return param
