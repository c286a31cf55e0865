"""One helper to emit this integration's Prefect events (``managed-agents.<kind>``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prefect.events import emit_event

if TYPE_CHECKING:
    from blocks.agent import ManagedAgent


def emit_managed_agents_event(
    kind: str,
    resource_id: str,
    *,
    name: str | None = None,
    payload: dict[str, Any] | None = None,
    related: list[dict[str, str]] | None = None,
    labels: dict[str, str] | None = None,
) -> None:
    """Emit ``managed-agents.<kind>`` about one remote object, for Automations to match.

    The resource id is ``managed-agents.<object>.<resource_id>``, where ``<object>`` is the first
    segment of ``kind`` (``agent.created`` about ``agent_1`` → ``managed-agents.agent.agent_1``).
    Inside a run Prefect attaches the flow run, task run and deployment as related resources.
    Never put an API key in ``payload`` or ``labels``.

    Args:
        kind: What happened, ``<object>.<event>``, e.g. ``agent.updated`` or ``session.completed``.
        resource_id: Id of the remote object (``agent_...``, ``sesn_...``).
        name: Human name shown for the resource (``prefect.resource.name``).
        payload: Extra JSON-serialisable details.
        related: Extra related resources (each a dict with ``prefect.resource.id`` and
            ``prefect.resource.role``).
        labels: Extra resource labels, e.g. ``{"managed-agents.version": "3"}``.
    """
    obj = kind.split(".", 1)[0]
    resource = {"prefect.resource.id": f"managed-agents.{obj}.{resource_id}"}
    if name:
        resource["prefect.resource.name"] = name
    resource.update(labels or {})
    emit_event(
        event=f"managed-agents.{kind}",
        resource=resource,
        payload=payload or {},
        related=related,
    )


def agent_resources(agent: ManagedAgent) -> list[dict[str, str]]:
    """Related resources for an event about one of ``agent``'s sessions: the agent (with its
    name and pinned version) and, when the agent is a saved block, that block document (the
    Prefect UI links it to the block's page)."""
    related = [
        {
            "prefect.resource.id": f"managed-agents.agent.{agent.agent_id}",
            "prefect.resource.role": "agent",
            "prefect.resource.name": agent.agent_name or agent.agent_id,
            "managed-agents.version": str(agent.version),
        }
    ]
    document_id = getattr(agent, "_block_document_id", None)
    if document_id is not None:
        block = {
            "prefect.resource.id": f"prefect.block-document.{document_id}",
            "prefect.resource.role": "block",
        }
        if name := getattr(agent, "_block_document_name", None):
            block["prefect.resource.name"] = str(name)
        related.append(block)
    return related


WAKE_EVENTS = ("managed-agents.session.idled", "managed-agents.session.terminated")
"""What the webhook receiver and the watcher emit when a detached run's session stopped working;
the resume Automation (:func:`flows.detached.resume_automation`) resumes the run on either."""


def emit_session_wake(session_id: str, status: str, flow_run_id: str, *, source: str) -> None:
    """Say that the session a suspended (detached) flow run waits for is no longer running.

    The run is the first related resource, so the Automation's ``ResumeFlowRun`` (``inferred``)
    resumes it, not the watcher's own run that Prefect adds to events emitted inside a run.

    Args:
        session_id: The session (``sesn_...``).
        status: ``idle`` or ``terminated``.
        flow_run_id: The suspended flow run to resume.
        source: Who noticed: ``webhook`` or ``watcher``.
    """
    emit_managed_agents_event(
        "session.terminated" if status == "terminated" else "session.idled",
        session_id,
        name=session_id,
        payload={"status": status, "source": source, "flow_run_id": flow_run_id},
        related=[
            {"prefect.resource.id": f"prefect.flow-run.{flow_run_id}", "prefect.resource.role": "flow-run"}
        ],
    )
