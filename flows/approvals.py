"""When tool calls wait for a person, pause or suspend the flow run for them.

The stream engine never blocks inside a task: when the policy says ``ask`` it returns the pending
calls, and the session pipeline (:class:`~managed_agents_core.pipeline.SessionPipeline`) hands
them to :func:`ask_for_approval` (flow level), which asks with Prefect's own mechanism:

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

from datetime import UTC, datetime, timedelta
from uuid import UUID

import prefect.runtime.deployment
import prefect.runtime.flow_run
from prefect.client.orchestration import get_client
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import apause_flow_run, asuspend_flow_run
from prefect.input import keyset_from_base_key
from prefect.logging import get_run_logger
from prefect.states import Running

from flows.approval_forms import (
    ToolApprovals,
    answers_from_form,
    approval_form,
    approval_key,
    shown_input,
    timeout_answers,
)
from managed_agents_core.exceptions import SessionRequiresActionError
from managed_agents_core.pipeline import StartedSession
from managed_agents_core.tool_calls import PendingToolCall, ToolAnswer
from managed_agents_core.turn import ConfirmationPolicy
from tasks.events import emit_managed_agents_event

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
    calls: tuple[PendingToolCall, ...], policy: ConfirmationPolicy, session: StartedSession
) -> dict[str, ToolAnswer]:
    """Pause or suspend the flow run with the approval form; return the verdicts.

    Raises:
        SessionRequiresActionError: Nobody answered in time and ``on_timeout`` is ``fail``.
    """
    logger = get_run_logger()
    session_id, console_url = session.session_id, session.console_url
    form = approval_form(calls, session_id=session_id, console_url=console_url)
    key = approval_key(calls)
    mode = _mode(policy)
    timeout = policy.approval_timeout_seconds
    names = ", ".join(c.label for c in calls)
    deadline = datetime.now(UTC) + timedelta(seconds=timeout)
    logger.info(
        "Waiting until %s UTC (%d s) for a person to approve or deny, %s the flow run (then %s): %s",
        deadline.strftime("%Y-%m-%d %H:%M:%S"),
        timeout,
        "pausing" if mode == "pause" else "suspending",
        policy.on_timeout,
        "; ".join(f"{c.label} {shown_input(c, 200)} ({c.reason or 'custom tool'})" for c in calls),
    )
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
