"""Helpers of the security tests (also used by the reliability campaign's bad-input table):
the secrets, the attack's parameters, deployment runs whose parameters come from outside, and
what the Prefect API holds about a run."""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from emulator import EmulatorServer

WORKER_KEY = "sk-ant-worker-4242424242-WORKER-SECRET"
"""The key in the worker's environment (``ANTHROPIC_API_KEY``): it must never leave for another host."""
PARAMETER_KEY = "sk-ant-param-1313131313-PARAMETER-SECRET"
"""A key someone put into a flow-run parameter: it must never be echoed back."""

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


@dataclass
class Listener:
    """A plain HTTP server on a loopback port that records every request it receives."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)

    def carrying(self, secret: str) -> list[dict[str, Any]]:
        """The requests with ``secret`` anywhere in their request line, headers or body."""
        return [r for r in self.requests if secret in json.dumps(r)]


def inline_agent(base_url: str, api_key: str | None = None) -> dict[str, Any]:
    """The ``agent`` parameter of the attack: an inline block whose credentials name another host."""
    credentials: dict[str, Any] = {"base_url": base_url}
    if api_key is not None:
        credentials["api_key"] = api_key
    return {
        "agent_name": "x",
        "agent_id": "agent_x",
        "version": 1,
        "environment_id": "env_x",
        "credentials": credentials,
    }


def writes(emulator: EmulatorServer) -> list[dict[str, Any]]:
    """The write requests (uploads, creates, sends) the emulator received."""
    return [r for r in emulator.control.requests() if r["method"] in WRITE_METHODS]


def files_under(folder: Path) -> list[str]:
    """Every file under ``folder`` (relative), for 'nothing was written' checks."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() or p.is_symlink())


# --- deployment runs -----------------------------------------------------------------------


def run_as_deployment(flow: Any, parameters: dict[str, Any]) -> Any:
    """Run ``flow`` as a deployment run whose parameters come from outside; return its final state.

    What it simulates, exactly: the flow is registered as a deployment on the test Prefect server
    (``flow.to_deployment(...).apply()``), a flow run of that deployment is created through the
    Prefect API with ``parameters`` (what the UI's Run form, ``prefect deployment run --param``
    or an Automation's RunDeployment action do), and that flow run is executed in this process
    by Prefect's flow engine (``prefect.flow_engine.run_flow``), which is what the flow-run
    process of a worker or ``flow.serve`` runs. No worker or runner process is started, so the
    run inherits this process's environment (the "worker's" key and roots).
    """
    from prefect.client.orchestration import get_client
    from prefect.flow_engine import run_flow

    deployment_id = flow.to_deployment(name=f"security-{uuid.uuid4().hex[:8]}").apply()
    with get_client(sync_client=True) as client:
        flow_run = client.create_flow_run_from_deployment(deployment_id, parameters=parameters)
    assert flow_run.deployment_id == deployment_id
    state = run_flow(flow, flow_run=flow_run, return_type="state")
    return asyncio.run(state) if inspect.isawaitable(state) else state  # an async flow's coroutine


def automation_parameters(templates: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    """Render an Automation's RunDeployment parameter templates against an event's payload.

    Uses Prefect's own code for it: ``RunDeployment._upgrade_v1_templates`` (a ``"{{ ... }}"``
    string becomes a JSON-typed Jinja template) and ``hydrate`` with the event as the Jinja
    context, as ``RunDeployment.render_parameters`` does when the Automation fires. The
    Automation service itself is not started: the event below is the one it would receive.
    """
    from prefect.events.schemas.events import Event
    from prefect.server.events.actions import RunDeployment
    from prefect.utilities.schema_tools.hydration import HydrationContext, hydrate

    event = Event(
        event="acme.ticket.created", resource={"prefect.resource.id": "acme.ticket.1"}, payload=payload
    )
    parameters = copy.deepcopy(templates)
    RunDeployment._upgrade_v1_templates(parameters)
    context = HydrationContext(raise_on_error=True, render_jinja=True, jinja_context={"event": event})
    rendered = hydrate(parameters, context)
    assert isinstance(rendered, dict)
    return rendered


def state_error(state: Any) -> BaseException:
    """The exception a failed flow-run state holds."""
    assert state.is_failed(), f"expected a failed run, got {state.type}: {state.message}"
    error = state.result(raise_on_failure=False)
    assert isinstance(error, BaseException), error
    return error


async def _run_records(
    flow_run_id: UUID, final_event: str, deadline_s: float, wait_for_logs: bool
) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.events.filters import EventFilter, EventRelatedFilter, EventResourceFilter
    from prefect.logging.handlers import APILogHandler

    await APILogHandler.aflush()  # logs go out in batches, apart from events: send what is queued
    async with get_client() as client:
        deadline = time.monotonic() + deadline_s
        while True:  # events and logs are persisted asynchronously: wait for the final event
            page = await client.read_events(
                EventFilter(related=EventRelatedFilter(id=[f"prefect.flow-run.{flow_run_id}"])), limit=50
            )
            own = await client.read_events(
                EventFilter(resource=EventResourceFilter(id=[f"prefect.flow-run.{flow_run_id}"])), limit=50
            )
            events = [*page.events, *own.events]
            logs = await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            settled = any(e.event == final_event for e in events) and (logs or not wait_for_logs)
            if settled or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        run = await client.read_flow_run(flow_run_id)
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {
        "state_message": run.state.message if run.state else "",
        "logs": [log.message for log in logs],
        "artifacts": [f"{a.key} {a.description} {a.data}" for a in artifacts],
        "events": [e.model_dump(mode="json") for e in events],
        "found_final_event": any(e.event == final_event for e in events),
    }


def run_records(
    flow_run_id: UUID, final_event: str = "prefect.flow-run.Failed", *, wait_for_logs: bool = False
) -> dict[str, Any]:
    """What the Prefect API holds about a flow run: its state message, logs, artifacts, events.

    Waits (20 s at most) for the run's final event and, with ``wait_for_logs``, its first log.
    """
    return asyncio.run(_run_records(flow_run_id, final_event, deadline_s=20, wait_for_logs=wait_for_logs))
