"""Stream a turn, and when tool calls wait for a person, pause or suspend the flow run for them.

The stream engine never blocks inside a task: when the policy says ``ask`` it returns the pending
calls, and :func:`stream_turn` (flow level) asks for a verdict with Prefect's own mechanism:

- ``pause`` (``apause_flow_run``): the process waits; works for any flow run.
- ``suspend`` (``asuspend_flow_run``): the process exits and releases the worker; needs a
  deployment. On resume the flow re-runs from the top with the same flow-run id: the cached
  ``create-session`` returns the same session, ``stream-session`` re-attaches without sending the
  kickoff again (the history has it), reaches the same pending calls, and the suspend with the
  same key returns the submitted form instead of suspending again.

Either way the form lists the pending calls; the answers become ``user.tool_confirmation``
events sent by the next ``stream-session`` (exactly once: calls the history shows answered are
skipped). On the approval timeout the policy's ``on_timeout`` applies (deny, or fail the run).
A suspended run has no process to notice its timeout; Prefect fails a resume that comes later.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from uuid import UUID

import prefect.runtime.deployment
import prefect.runtime.flow_run
from prefect.client.orchestration import get_client
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import apause_flow_run, asuspend_flow_run
from prefect.input import keyset_from_base_key
from prefect.logging import get_run_logger
from prefect.states import Running

from blocks.agent import ManagedAgent
from flows.approval_forms import (
    ToolApprovals,
    answers_from_form,
    approval_form,
    approval_key,
    timeout_answers,
)
from managed_agents_core.exceptions import SessionRequiresActionError
from managed_agents_core.lifecycle import SessionRunReport
from managed_agents_core.session_stream import ConfirmationPolicy, CustomToolDispatcher
from managed_agents_core.tool_calls import PendingToolCall, ToolAnswer
from tasks.events import emit_managed_agents_event
from tasks.sessions import stream_session

APPROVAL_POLL_SECONDS = 2
"""How often a paused run checks whether it was resumed."""


def _mode(policy: ConfirmationPolicy) -> str:
    if policy.approval_mode != "auto":
        return policy.approval_mode
    return "suspend" if prefect.runtime.deployment.id else "pause"


async def _resumed_form(form: type[ToolApprovals], key: str) -> ToolApprovals | None:
    """The submitted form when the run was resumed at the very end of the wait, else None."""
    flow_run_id = UUID(str(prefect.runtime.flow_run.id))
    async with get_client() as client:
        run = await client.read_flow_run(flow_run_id)
        if run.state is not None and run.state.is_running():
            return await form.aload(keyset_from_base_key(f"paused-{key}"))
        # Nobody answered: take the run back from Paused so its tasks can go on.
        await client.set_flow_run_state(flow_run_id, Running(message="No tool approval in time"), force=True)
    return None


async def ask_for_approval(
    calls: tuple[PendingToolCall, ...],
    policy: ConfirmationPolicy,
    *,
    session_id: str,
    console_url: str,
) -> dict[str, ToolAnswer]:
    """Pause or suspend the flow run with the approval form; return the verdicts.

    Raises:
        SessionRequiresActionError: Nobody answered in time and ``on_timeout`` is ``fail``.
    """
    logger = get_run_logger()
    form = approval_form(calls, session_id=session_id, console_url=console_url)
    key = approval_key(calls)
    mode = _mode(policy)
    timeout = policy.approval_timeout_seconds
    names = ", ".join(c.label for c in calls)
    logger.info("Waiting up to %d s for approval of %s (%s the flow run)", timeout, names, mode)
    emit_managed_agents_event(
        "session.awaiting-approval",
        session_id,
        name=session_id,
        payload={"tools": [c.label for c in calls], "event_ids": [c.event_id for c in calls], "mode": mode},
    )
    submitted: ToolApprovals | None
    if mode == "suspend":
        submitted = await asuspend_flow_run(wait_for_input=form, timeout=timeout, key=key)
    else:
        try:
            submitted = await apause_flow_run(
                wait_for_input=form, timeout=timeout, poll_interval=APPROVAL_POLL_SECONDS, key=key
            )
        except FlowPauseTimeout:
            submitted = await _resumed_form(form, key)
    if submitted is None:
        if policy.on_timeout == "fail":
            raise SessionRequiresActionError(
                f"Nobody approved or denied {names} within {timeout} s; the policy says fail",
                session_id=session_id,
                console_url=console_url,
            )
        logger.warning("No approval within %d s; denying %s", timeout, names)
        return timeout_answers(calls)
    answers = answers_from_form(submitted, calls, policy)
    for call in calls:
        logger.info("Tool %s (%s): %s", call.label, call.event_id, answers[call.event_id].result)
    return answers


async def stream_turn(
    agent: ManagedAgent,
    session_id: str,
    prompt: str,
    *,
    policy: ConfirmationPolicy | None,
    max_duration: float | None,
    kickoff: list[dict[str, Any]] | None = None,
    turn_event_ids: list[str] | None = None,
    send_turn: Callable[[], Awaitable[Sequence[str]]] | None = None,
    custom_tools: CustomToolDispatcher | None = None,
    reattached: bool = False,
) -> SessionRunReport:
    """Stream one turn to its end, asking a person whenever the policy says ``ask``.

    Args:
        agent: The ``ManagedAgent`` block.
        session_id: The session.
        prompt: The first user message (first turn only).
        policy: Confirmation policy (``ask`` pauses or suspends this flow run).
        max_duration: Wall-clock limit of each streaming stretch (waiting for a person excluded).
        kickoff: Events to send instead of the prompt (e.g. ``user.define_outcome``).
        turn_event_ids: The already-sent events that started a follow-up turn.
        send_turn: Sends a follow-up turn's events once the stream is open (once only).
        custom_tools: Runs ``agent.custom_tool_use`` calls.
        reattached: The session was started by an earlier attempt, which may have sent the prompt.
    """
    answers: dict[str, ToolAnswer] = {}
    resume = reattached
    while True:
        report = await stream_session(
            agent,
            session_id,
            prompt,
            policy=policy,
            max_duration=max_duration,
            kickoff=kickoff,
            turn_event_ids=turn_event_ids,
            send_turn=send_turn,
            answers=answers,
            custom_tools=custom_tools,
            resume=resume,
        )
        if report.end.kind != "awaiting_approval":
            return report
        resume = True  # the prompt went out in this stretch
        answers.update(
            await ask_for_approval(
                report.end.pending_calls,
                policy or ConfirmationPolicy(),
                session_id=session_id,
                console_url=report.console_url,
            )
        )
