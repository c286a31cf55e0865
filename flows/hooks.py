"""Flow-run state hooks: interrupt and archive the session when a run is cancelled or crashes.

Hooks run in another process than the flow (the runner or the worker's hook subprocess), so they
never use in-memory state: the session id comes from the flow-run tag ``session:<id>`` (or the
label that runs of earlier versions carry) and the client from the flow run's ``agent``
parameter (a block name, a ``$ref`` to a block document, or a serialized saved block). The block is always loaded
from its saved document: an inline block in the parameters (whose ``base_url`` anyone who ran
the flow may have chosen) never gets a client built from it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing
from datetime import timedelta
from typing import Any

import anthropic
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    TaskRunFilter,
    TaskRunFilterFlowRunId,
    TaskRunFilterState,
    TaskRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.logging.loggers import flow_run_logger
from prefect.utilities.asyncutils import run_coro_as_sync

from blocks.agent import ManagedAgent
from managed_agents_core.exceptions import PathOutsideRootsError
from managed_agents_core.keys import FLOW_RUN_KEY, TASK_RUN_KEY, read_key, run_session_id
from managed_agents_core.lifecycle import (
    ainterrupt_and_archive,
    sessions_matching,
)
from managed_agents_core.output_sinks import remove_orphaned_partials
from managed_agents_core.roots import check_inside_roots, output_roots


async def _load_agent(parameter: Any) -> ManagedAgent | None:
    """Load the saved agent block a stored flow-run parameter names (never from memory).

    Only saved blocks are loaded, always from the Prefect API: an inline block (no block
    document behind it) gives None, so no client is ever built from a parameter's own fields.
    """
    if isinstance(parameter, ManagedAgent):
        name = getattr(parameter, "_block_document_name", None)
        if name:
            return await ManagedAgent.aload(name)
        document_id = getattr(parameter, "_block_document_id", None)
        return await ManagedAgent.aload_from_ref(str(document_id)) if document_id else None
    if isinstance(parameter, str):
        return await ManagedAgent.aload(parameter)
    if isinstance(parameter, dict):
        if "$ref" in parameter:
            return await ManagedAgent.aload_from_ref(parameter["$ref"])
        name = parameter.get("_block_document_name")
        if name:
            return await ManagedAgent.aload(str(name))
        document_id = parameter.get("_block_document_id")
        if document_id:
            return await ManagedAgent.aload_from_ref(str(document_id))
    return None


def _sessions_started_by(
    client: anthropic.AsyncAnthropic, agent: ManagedAgent, flow_run: Any
) -> AsyncGenerator[Any, None]:
    """The sessions whose metadata names this flow run (created since the run started), page by page."""
    since = getattr(flow_run, "start_time", None) or getattr(flow_run, "created", None)
    if since is None:
        return _no_sessions()
    return sessions_matching(
        client, agent.agent_id, {FLOW_RUN_KEY: str(flow_run.id)}, since=since - timedelta(minutes=1)
    )


async def _no_sessions() -> AsyncGenerator[Any, None]:
    return
    yield  # an async generator that yields nothing


async def _session_started_by(
    client: anthropic.AsyncAnthropic, agent: ManagedAgent, flow_run: Any
) -> str | None:
    """The session whose metadata names this flow run, if any (stops reading at the first)."""
    async with aclosing(_sessions_started_by(client, agent, flow_run)) as sessions:
        async for session in sessions:
            return str(session.id)
    return None


async def acleanup_session(flow: Any, flow_run: Any, state: Any) -> str | None:
    """Interrupt, then archive, the session of a flow run, and remove its partial downloads.

    The session is the one the flow run's tag names or, when the run stopped before tagging
    itself, the one whose metadata names the run. Never raises.

    Returns:
        What happened to the session (``archived``, ``already-archived``, ``missing``), or None
        when there was nothing to do or it could not be done (logged).
    """
    try:
        return await _archive_session(flow, flow_run, state)
    finally:
        try:
            remove_partial_outputs(flow_run)
        except OSError as exc:
            flow_run_logger(flow_run, flow).warning("Could not remove partial downloads: %s", exc)


async def _archive_session(flow: Any, flow_run: Any, state: Any) -> str | None:
    """The session part of :func:`acleanup_session`."""
    logger = flow_run_logger(flow_run, flow)
    session_id = run_session_id(getattr(flow_run, "tags", None), getattr(flow_run, "labels", None))
    try:
        agent = await _load_agent((getattr(flow_run, "parameters", None) or {}).get("agent"))
        if agent is None:
            if session_id:
                logger.warning("Cannot rebuild the agent block to clean up session %s", session_id)
            return None
        async with agent.credentials.get_async_client() as client:
            if not session_id:
                # Stopped between the create and the tag (e.g. cancelled while the create's
                # answer was on its way): the session's metadata names this flow run.
                session_id = await _session_started_by(client, agent, flow_run)
                if session_id is None:
                    logger.info("This flow run started no managed-agents session; nothing to clean up")
                    return None
            outcome = await ainterrupt_and_archive(client, str(session_id), logger=logger)
    except Exception as exc:  # a hook must never raise; say what failed instead
        logger.error("Could not interrupt and archive session %s: %s", session_id, type(exc).__name__)
        return None
    state_name = getattr(state, "name", "?")
    logger.info("Session %s %s after the flow run became %s", session_id, outcome, state_name)
    return outcome


async def acleanup_task_item_sessions(flow: Any, flow_run: Any, state: Any) -> list[str | None]:
    """Interrupt and archive the sessions of a batch's unfinished item task runs (``item_runs="task"``).

    The sessions are found by their metadata (this flow run, and the item's task run); those
    whose task run completed or failed are left alone (idle, kept for inspection). Partial
    downloads of the killed process are removed from every item folder. Never raises.

    Returns:
        What happened to each session that was cleaned up (``None`` when it could not be).
    """
    logger = flow_run_logger(flow_run, flow)
    parameters = getattr(flow_run, "parameters", None) or {}
    try:
        remove_partial_outputs(flow_run, per_item=True)
    except OSError as exc:
        logger.warning("Could not remove partial downloads: %s", exc)
    try:
        agent = await _load_agent(parameters.get("agent"))
        if agent is None:
            logger.warning("Cannot rebuild the agent block to clean up the batch's sessions")
            return []
        finished = await _finished_task_runs(flow_run)
        async with agent.credentials.get_async_client() as client:
            sessions = [
                s
                async for s in _sessions_started_by(client, agent, flow_run)
                if read_key(s.metadata, TASK_RUN_KEY) not in finished
            ]
            logger.info("Cleaning up the sessions of %d unfinished item task run(s)", len(sessions))
            outcomes = await asyncio.gather(
                *(ainterrupt_and_archive(client, str(s.id), logger=logger) for s in sessions),
                return_exceptions=True,
            )
    except Exception as exc:  # a hook must never raise; say what failed instead
        logger.error("Could not clean up the batch's item sessions: %s", type(exc).__name__)
        return []
    return [o if isinstance(o, str) else None for o in outcomes]


async def _finished_task_runs(flow_run: Any) -> set[str]:
    """Ids of the flow run's task runs that completed or failed."""
    task_filter = TaskRunFilter(
        flow_run_id=TaskRunFilterFlowRunId(any_=[flow_run.id]),
        state=TaskRunFilterState(type=TaskRunFilterStateType(any_=[StateType.COMPLETED, StateType.FAILED])),
    )
    finished: set[str] = set()
    async with get_client() as prefect_client:
        while True:
            page = await prefect_client.read_task_runs(
                task_run_filter=task_filter, limit=200, offset=len(finished)
            )
            finished.update(str(t.id) for t in page)
            if len(page) < 200:
                return finished


def remove_partial_outputs(flow_run: Any, *, per_item: bool = False) -> None:
    """Delete the partial downloads a killed flow-run process left in its local output folder
    (with ``per_item``, in each item folder of a batch's output folder)."""
    output_dir = (getattr(flow_run, "parameters", None) or {}).get("output_dir")
    if not isinstance(output_dir, str) or not output_dir or "://" in output_dir:
        return
    try:  # a parameter never points the hook outside the output roots
        root = check_inside_roots(output_dir, output_roots(), kind="output", what="output_dir")
    except PathOutsideRootsError:
        return
    folders = [f for f in root.iterdir() if f.is_dir()] if per_item and root.is_dir() else [root]
    removed = [path for folder in folders for path in remove_orphaned_partials(folder)]
    if removed:
        flow_run_logger(flow_run).info("Removed %d partial download(s) from %s", len(removed), output_dir)


def cleanup_session(flow: Any, flow_run: Any, state: Any) -> None:
    """Flow hook (on_cancellation, on_crashed, on_failure): interrupt, then archive, the session.

    Idempotent and safe to run more than once; reads the session id from the flow-run tag.
    Parameter names must be exactly ``flow``, ``flow_run``, ``state`` (Prefect passes keywords).
    """
    run_coro_as_sync(acleanup_session(flow, flow_run, state))


def _is_timeout(state: Any) -> bool:
    message = str(getattr(state, "message", "") or "")
    return "timeout" in message.lower() or "TimeoutError" in message


def cleanup_session_if_timed_out(flow: Any, flow_run: Any, state: Any) -> None:
    """Flow ``on_failure`` hook: clean up the session only when the run failed by a timeout.

    Other failures (refusal, budget, ...) leave an idle session behind, which costs nothing and
    stays inspectable; a timed-out run may leave a running one.
    """
    if _is_timeout(state):
        cleanup_session(flow, flow_run, state)
