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


async def asuspended_runs(session_id: str | None = None) -> list[FlowRun]:
    """The suspended detached flow runs (of one session, when given), oldest first.

    Args:
        session_id: Only the runs waiting for this session.
    """
    tags = [DETACHED_TAG, *([session_tag(session_id)] if session_id else [])]
    async with get_client() as prefect:
        runs = await prefect.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                tags=FlowRunFilterTags(all_=tags),
                state=FlowRunFilterState(name=FlowRunFilterStateName(any_=["Suspended"])),
            ),
            limit=200,
        )
    return sorted(runs, key=lambda run: run.created or 0)
