"""Detached runs: flow runs suspended while their session works (``run_agent_session(detach=True)``).

A detached run carries the tags ``managed-agents:detached`` and ``session:<id>``. The watcher
flow and the webhook receiver find it here and emit the wake event; an Automation resumes it.
"""

from __future__ import annotations

from prefect import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateName,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import FlowRun

from managed_agents_core.keys import DETACHED_TAG, session_tag

PAUSE_KEY_PREFIX = "detached-"


def detach_pause_key(session_id: str) -> str:
    """The pause key of a detached run's suspend: the re-run after the resume passes it, and it
    tells a detach suspend from an approval's (which waits for a person's form, never a wake)."""
    return PAUSE_KEY_PREFIX + session_id


async def asuspended_runs(session_id: str | None = None, *, state: str = "Suspended") -> list[FlowRun]:
    """The detached flow runs suspended for their session (of one session, when given), oldest
    first. A detached run later suspended for a tool approval is not one of them: it waits for a
    person, and waking it would resume it without their answer.

    Args:
        session_id: Only the runs waiting for this session.
        state: Another state name: ``Running`` finds runs tagged just before their suspend
            (the tag goes on after the prompt is sent, the suspend follows at once).
    """
    tags = [DETACHED_TAG, *([session_tag(session_id)] if session_id else [])]
    async with get_client() as prefect:
        runs = await prefect.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                tags=FlowRunFilterTags(all_=tags),
                state=FlowRunFilterState(name=FlowRunFilterStateName(any_=[state])),
            ),
            limit=200,
        )
    if state == "Suspended":
        runs = [run for run in runs if _suspended_for_detach(run)]
    return sorted(runs, key=lambda run: run.created or 0)


def _suspended_for_detach(run: FlowRun) -> bool:
    details = run.state.state_details if run.state is not None else None
    return bool(
        details and (details.pause_key or "").startswith(PAUSE_KEY_PREFIX) and not details.run_input_keyset
    )
