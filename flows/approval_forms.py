"""The approval form a person fills in the Prefect UI when tool calls wait for confirmation.

A paused or suspended flow run shows a ``RunInput`` form; :func:`approval_form` builds one with a
decision (allow or deny) and a deny message per pending call, the call's tool, input and reason
shown as text rather than as fields a person could edit. :func:`answers_from_form` turns the
submitted form into the verdicts
the stream engine sends as ``user.tool_confirmation`` events.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Literal

from prefect.input import RunInput
from pydantic import ConfigDict, Field, create_model

from managed_agents_core.tool_calls import PendingToolCall, ToolAnswer
from managed_agents_core.turn import ConfirmationPolicy

NO_ANSWER_MESSAGE = "Denied: nobody approved this tool call in time."
"""Deny message sent for calls nobody decided on before the approval timeout."""


MESSAGE_SUFFIX = "_message"
"""A call's deny-message field is named after its decision field plus this suffix."""


def _decisions_required(schema: dict[str, Any]) -> None:
    """Mark every decision as required in the form's schema: it has a default (deny), which
    pydantic would publish as optional, and the UI would label "(Optional)"."""
    decisions = [name for name in schema.get("properties", {}) if not name.endswith(MESSAGE_SUFFIX)]
    if decisions:
        schema["required"] = decisions


class ToolApprovals(RunInput):
    """The form of a run waiting for tool approvals.

    :func:`approval_form` derives one per pause: for each pending call, a decision field named
    after the call's tool-use event id (``allow`` or ``deny``, default ``deny``; its title names
    the tool and its description shows the input and why it waits) and a deny-message field
    (``<event id>_message``). Nothing else is editable, and there is nothing to add or remove.
    Through the API: ``resume_flow_run(id, run_input={"<event id>": "allow"})``, with a decision
    for every pending call (the schema requires them; the messages are optional).
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra=_decisions_required)


def shown_input(call: PendingToolCall, limit: int) -> str:
    """The call's input JSON, cut to ``limit`` characters."""
    text = call.input_json
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
        f"## Session {session_id} waits for {len(calls)} tool confirmation(s)",
        "",
        f"[Open the session in the Claude Console]({console_url})",
        "",
        "| # | tool | input | why it waits |",
        "|---|---|---|---|",
    ]
    for number, call in enumerate(calls, 1):
        shown = shown_input(call, 300).replace("|", "\\|").replace("`", "'")
        lines.append(f"| {number} | {call.label} | `{shown}` | {call.reason} |")
    lines += ["", "Set each call to **allow** or **deny** (with a message for the agent), then submit."]
    return "\n".join(lines)


def approval_form(
    calls: Sequence[PendingToolCall], *, session_id: str, console_url: str
) -> type[ToolApprovals]:
    """A form with one decision (default deny) and one deny message per pending call."""
    fields: dict[str, Any] = {}
    for number, call in enumerate(calls, 1):
        fields[call.event_id] = (
            Literal["allow", "deny"],
            Field(
                default="deny",
                title=f"{number}. {call.label}",
                description=f"Input: {shown_input(call, 200)} (waits because: {call.reason or 'its policy asks'})",
            ),
        )
        fields[call.event_id + MESSAGE_SUFFIX] = (
            str,
            Field(
                default="",
                title=f"{number}. Message if denied",
                description="What to tell the agent: why, or what to do instead (empty: the policy's message).",
            ),
        )
    form = create_model("ToolApprovals", __base__=ToolApprovals, **fields)
    return form.with_initial_data(description=approval_markdown(calls, session_id, console_url))


def answers_from_form(
    form: ToolApprovals, calls: Sequence[PendingToolCall], policy: ConfirmationPolicy
) -> dict[str, ToolAnswer]:
    """Verdicts by tool-use event id; a pending call missing from the form is denied.

    Args:
        form: What the person submitted.
        calls: The calls the form was built for (fields for other ids are ignored).
        policy: Supplies the deny message when the person gave none.
    """
    submitted = form.model_dump()
    answers: dict[str, ToolAnswer] = {}
    for call in calls:
        decision = submitted.get(call.event_id)
        if decision is None:
            answers[call.event_id] = ToolAnswer("deny", NO_ANSWER_MESSAGE)
        elif decision == "allow":
            answers[call.event_id] = ToolAnswer("allow")
        else:
            message = str(submitted.get(call.event_id + MESSAGE_SUFFIX) or "").strip()
            answers[call.event_id] = ToolAnswer("deny", message or policy.deny_message)
    return answers


def timeout_answers(calls: Sequence[PendingToolCall]) -> dict[str, ToolAnswer]:
    """Deny every call (the ``on_timeout: deny`` default)."""
    return {c.event_id: ToolAnswer("deny", NO_ANSWER_MESSAGE) for c in calls}
