"""Waking detached runs: the watcher flow, and the Automation that resumes them.

``run_agent_session(detach=True)`` suspends its run once the prompt is sent. Whoever notices
that the session stopped working emits ``managed-agents.session.idled`` (or ``.terminated``)
with the run as related resource: the webhook receiver (``managed-agents webhooks serve``) when
the service can reach it, else :func:`watch_detached_sessions` on a schedule. The Automation of
:func:`resume_automation` resumes the run on either event; the run re-attaches to its session
and collects the outputs.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import anthropic
from prefect import flow, get_client, task
from prefect.automations import AutomationCore
from prefect.events.actions import ResumeFlowRun
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.logging import get_run_logger

from blocks.agent import ManagedAgent, aresolve_agent
from managed_agents_core.events import KICKOFF_TYPES
from managed_agents_core.exceptions import ManagedAgentsError
from managed_agents_core.keys import run_session_id
from tasks.detached import asuspended_runs
from tasks.events import WAKE_EVENTS, emit_session_wake
from tasks.retry import TRANSIENT_RETRY_OPTIONS

RESUME_AUTOMATION_NAME = "managed-agents-resume-detached-runs"
END_TYPES = ("session.status_idle", "session.status_terminated", "session.deleted")


def resume_automation() -> AutomationCore:
    """The Automation that resumes a detached run when its session's wake event arrives."""
    return AutomationCore(
        name=RESUME_AUTOMATION_NAME,
        description="Resume a run_agent_session run that detached from its session (detach=True) "
        "once the session stopped working: managed-agents.session.idled or .terminated, from the "
        "webhook receiver or the watcher flow. The run is the event's related flow run.",
        trigger=EventTrigger(
            expect=set(WAKE_EVENTS),
            match={"prefect.resource.id": "managed-agents.session.*"},
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=[ResumeFlowRun(source="inferred")],
    )


async def aensure_resume_automation() -> UUID:
    """Create the resume Automation unless one with its name exists; return its id."""
    async with get_client() as prefect:
        existing = await prefect.read_automations_by_name(RESUME_AUTOMATION_NAME)
        if existing:
            return existing[0].id
        return await prefect.create_automation(resume_automation())


@task(name="check-detached-session", **TRANSIENT_RETRY_OPTIONS)
async def session_stopped(agent: ManagedAgent, session_id: str) -> str | None:
    """Whether the turn of the session's newest prompt has ended: ``idle``, ``terminated``, or None.

    Read from the history (the status trails the events): the newest end event must come after
    the newest processed prompt, so a prompt still queued is not taken for a finished turn. A
    session that is gone counts as terminated (the resumed run reports it).

    Args:
        agent: The block of the detached run (its credentials).
        session_id: The session.
    """
    async with agent.credentials.get_async_client() as client:
        try:
            page = await client.beta.sessions.events.list(session_id, order="desc", limit=100)
        except anthropic.NotFoundError:
            return "terminated"
    events = page.data
    end = next((e for e in events if e.type in END_TYPES), None)
    prompt = next((e for e in events if e.type in KICKOFF_TYPES), None)
    if end is None or end.processed_at is None:
        return None
    if prompt is not None and (prompt.processed_at is None or prompt.processed_at > end.processed_at):
        return None
    return "idle" if end.type == "session.status_idle" else "terminated"


@flow(name="watch-detached-sessions")
async def watch_detached_sessions() -> list[str]:
    """Wake the detached runs whose session stopped working (no public URL needed for webhooks).

    Reads the suspended runs tagged ``managed-agents:detached``, checks each one's session, and
    emits ``managed-agents.session.idled`` (or ``.terminated``) for those that are done; the
    resume Automation, created here when missing, resumes them. Schedule it (``prefect.yaml``
    has a deployment that runs it every minute); a run still suspended is simply found again.

    Returns:
        The ids of the sessions whose runs were woken.
    """
    logger = get_run_logger()
    await aensure_resume_automation()
    woken: list[str] = []
    runs = await asuspended_runs()
    for run in runs:
        session_id = run_session_id(run.tags, run.labels)
        agent = (run.parameters or {}).get("agent")
        if session_id is None or not isinstance(agent, str):
            logger.warning("Detached run %s names no session or no saved agent block; skipped.", run.name)
            continue
        try:
            block = await aresolve_agent(agent)
            status = await session_stopped(block, session_id)
        except (ManagedAgentsError, anthropic.APIError) as exc:
            logger.warning("Could not check session %s of run %s: %s", session_id, run.name, exc)
            continue
        if status is not None:
            emit_session_wake(session_id, status, str(run.id), source="watcher")
            woken.append(session_id)
    logger.info("%d detached run(s) waiting, %d woken: %s", len(runs), len(woken), ", ".join(woken) or "none")
    return woken
