"""The approval form a person fills in the Prefect UI when tool calls wait for confirmation.

A paused or suspended flow run shows a ``RunInput`` form; :func:`approval_form` builds one whose
initial data lists every pending call (tool, input JSON, why it waits) with a decision (allow or
deny) and a deny message. :func:`answers_from_form` turns the submitted form into the verdicts
the stream engine sends as ``user.tool_confirmation`` events.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Literal

from prefect.input import RunInput
from pydantic import BaseModel, Field

from managed_agents_core.tool_calls import PendingToolCall, ToolAnswer
from managed_agents_core.turn import ConfirmationPolicy

NO_ANSWER_MESSAGE = "Denied: nobody approved this tool call in time."
"""Deny message sent for calls nobody decided on before the approval timeout."""


class ToolDecision(BaseModel):
    """One pending tool call and the decision on it."""

    tool_use_id: str = Field(description="Id of the agent's tool-use event (keep as is).")
    tool: str = Field(description="The tool the agent wants to run.")
    input: str = Field(description="The tool's input, as JSON.")
    reason: str = Field(default="", description="Why the call waits for a confirmation.")
    decision: Literal["allow", "deny"] = Field(default="deny", description="Allow the call, or deny it.")
    deny_message: str | None = Field(
        default=None, description="With deny: what to tell the agent (why, or what to do instead)."
    )


class ToolApprovals(RunInput):
    """The form of a run waiting for tool approvals: one decision per pending call."""

    decisions: list[ToolDecision] = Field(
        default_factory=list, description="Each pending tool call with allow or deny."
    )


def approval_key(calls: Sequence[PendingToolCall]) -> str:
    """A stable pause key for one set of pending calls (lowercase, digits and dashes).

    The same calls give the same key, so a suspended flow that re-runs from the top after its
    resume finds the answer instead of suspending again.
    """
    digest = hashlib.sha256("\n".join(sorted(c.event_id for c in calls)).encode()).hexdigest()
    return f"tool-approval-{digest[:20]}"


def approval_markdown(calls: Sequence[PendingToolCall], session_id: str, console_url: str) -> str:
    """The form's description: what waits, and how to answer."""
    lines = [
        f"## Session [`{session_id}`]({console_url}) waits for {len(calls)} tool confirmation(s)",
        "",
        "| tool | input | reason | event |",
        "|---|---|---|---|",
    ]
    for call in calls:
        shown = call.input_json if len(call.input_json) <= 300 else call.input_json[:299] + "…"
        shown = shown.replace("|", "\\|")
        lines.append(f"| `{call.label}` | `{shown}` | {call.reason} | `{call.event_id}` |")
    lines += ["", "Set each decision to **allow** or **deny** (with a message for the agent), then resume."]
    return "\n".join(lines)


def approval_form(
    calls: Sequence[PendingToolCall], *, session_id: str, console_url: str
) -> type[ToolApprovals]:
    """A ``ToolApprovals`` form pre-filled with the pending calls (decision defaults to deny)."""
    decisions = [
        ToolDecision(tool_use_id=c.event_id, tool=c.label, input=c.input_json, reason=c.reason) for c in calls
    ]
    return ToolApprovals.with_initial_data(
        description=approval_markdown(calls, session_id, console_url), decisions=decisions
    )


def answers_from_form(
    form: ToolApprovals, calls: Sequence[PendingToolCall], policy: ConfirmationPolicy
) -> dict[str, ToolAnswer]:
    """Verdicts by tool-use event id; a pending call missing from the form is denied.

    Args:
        form: What the person submitted.
        calls: The calls the form was built for (decisions for other ids are ignored).
        policy: Supplies the deny message when the person gave none.
    """
    by_id = {d.tool_use_id: d for d in form.decisions}
    answers: dict[str, ToolAnswer] = {}
    for call in calls:
        decision = by_id.get(call.event_id)
        if decision is None:
            answers[call.event_id] = ToolAnswer("deny", NO_ANSWER_MESSAGE)
        elif decision.decision == "allow":
            answers[call.event_id] = ToolAnswer("allow")
        else:
            answers[call.event_id] = ToolAnswer("deny", decision.deny_message or policy.deny_message)
    return answers


def timeout_answers(calls: Sequence[PendingToolCall]) -> dict[str, ToolAnswer]:
    """Deny every call (the ``on_timeout: deny`` default)."""
    return {c.event_id: ToolAnswer("deny", NO_ANSWER_MESSAGE) for c in calls}
