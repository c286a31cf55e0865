"""The follow-up flow: send another turn to an existing session and stream it to its end.

Same guarantees as the first turn: the follow-up is sent once per flow run (cached, and a lost
answer to the send is resolved from the history), the stream consolidates with the history
(no gap, no duplicate), only an idle *after* this turn's message ends it (the previous turn's
idle is in the history too), confirmations and custom tools are handled the same way, and a
cancelled or crashed run interrupts and archives the session.

``acontinue_agent_session`` is the flow; ``continue_agent_session`` is its sync twin
(:mod:`flows.twins`).

No ``from __future__ import annotations``: Prefect builds the parameter model from the signature.
"""

from decimal import Decimal
from typing import Annotated

from prefect import State, flow
from pydantic import Field

from flows.hooks import cleanup_session, cleanup_session_if_timed_out
from flows.run_names import follow_up_run_name
from flows.session import (
    AgentParam,
    CustomToolsParam,
    DurationParam,
    OutcomeParam,
    OutputDirParam,
    PolicyParam,
    ToolRetriesParam,
    run_pipeline,
    tool_dispatcher,
)
from flows.twins import returns_state_data, sync_twin
from managed_agents_core.pipeline import SessionRequest
from managed_agents_core.results import SessionResult

SessionIdParam = Annotated[str, Field(description="The session to continue (sesn_...).")]
RaisedBudgetParam = Annotated[
    Decimal | None,
    Field(
        default=None,
        ge=Decimal("0.01"),
        description="Raise the session's spend ceiling to this (list cost, USD) before the turn; "
        "only a session started with a budget has one to raise.",
    ),
]
FollowUpParam = Annotated[str, Field(description="The follow-up message: the next user turn.")]


@returns_state_data
@flow(
    name="continue-agent-session",
    flow_run_name=follow_up_run_name,
    on_cancellation=[cleanup_session],
    on_crashed=[cleanup_session],
    on_failure=[cleanup_session_if_timed_out],
)
async def acontinue_agent_session(
    agent: AgentParam,
    session_id: SessionIdParam,
    prompt: FollowUpParam,
    output_dir: OutputDirParam | None = None,
    confirmation_policy: PolicyParam = None,
    max_duration_seconds: DurationParam = None,
    custom_tools: CustomToolsParam = None,
    custom_tool_retries: ToolRetriesParam = 0,
    outcome: OutcomeParam = None,
    budget_usd: RaisedBudgetParam = None,
) -> State[SessionResult]:
    """Send a follow-up message to an existing session and stream that turn to its end.

    Args:
        agent: The ManagedAgent block, or the name of a saved one (created by deploy_agent).
        session_id: The session to continue (sesn_...).
        prompt: The follow-up message: the next user turn.
        output_dir: Local folder for the session's output files (not collected when empty);
            must be inside the output roots (see ``run_agent_session``).
        confirmation_policy: How to answer tool confirmations (default: fail the run).
        max_duration_seconds: Interrupt the session and fail after this many seconds.
        custom_tools: Custom tools run for the agent's custom tool calls: names of tools
            registered in code (``@custom_tool``, in a module of ``MANAGED_AGENTS_TOOL_MODULES``),
            or from Python the functions themselves. An unknown name fails before anything is
            uploaded or created.
        custom_tool_retries: Task-run retries of a failing custom tool before its error goes to
            the agent.
        outcome: Send this outcome (user.define_outcome with a rubric) instead of the prompt.
        budget_usd: Raise the session's server-enforced spend ceiling to this (list cost, USD)
            before the turn. Only a session started with a budget has one to raise, and the new
            one must be above what it has spent (``BudgetUpdateError`` otherwise, before the
            follow-up is sent).

    Returns:
        The turn's typed result (final message and stop reason of this turn; the session's
        cumulative usage).
    """
    request = SessionRequest(
        prompt=prompt,
        output_dir=output_dir or None,
        policy=confirmation_policy,
        max_duration=max_duration_seconds,
        custom_tools=tool_dispatcher(custom_tools, custom_tool_retries),
        outcome=outcome,
        session_id=session_id,
        follow_up=True,
        budget_usd=budget_usd,
    )
    return await run_pipeline(agent, request)


continue_agent_session = sync_twin(acontinue_agent_session)
