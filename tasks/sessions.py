"""Session tasks: start (retry-safe), stream to the end of the turn, interrupt and archive.

``start_session`` is cached on the flow run and its inputs, so a flow retry re-attaches to the
session it already started instead of paying for a second one. The cached step only creates;
a verification step checks the cached session and, when it is terminated or archived, runs the
create again with ``refresh_cache=True`` (which also replaces the cache record).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
from collections.abc import Awaitable, Mapping
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

import prefect.runtime.flow_run
import prefect.runtime.task_run
from prefect import task
from prefect.cache_policies import INPUTS, NO_CACHE, RUN_ID
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext
from prefect.logging import get_run_logger
from prefect.transactions import CommitMode, transaction

from managed_agents_core.events import EventParam
from managed_agents_core.keys import (
    AGENT_VERSION_KEY,
    BLOCK_KEY,
    DEPLOYMENT_KEY,
    DETACHED_TAG,
    FLOW_RUN_KEY,
    SESSION_TAG_PREFIX,
    START_KEY,
    TASK_RUN_KEY,
    session_tag,
)
from managed_agents_core.lifecycle import (
    LoggingObserver,
    SessionRunReport,
    acreate_session,
    adrive_session,
    ainterrupt_and_archive,
    asend_turn_events,
    attachable_session,
    find_session,
)
from managed_agents_core.pipeline import StartedSession, asend_follow_up
from managed_agents_core.report import SessionReport, turn_report
from managed_agents_core.tool_calls import ToolAnswer
from managed_agents_core.transcript import Transcript
from managed_agents_core.turn import TurnRequest
from tasks.events import agent_resources, emit_managed_agents_event
from tasks.reporting import ProgressMark, progress_artifact, publish_session_report
from tasks.retry import TRANSIENT_RETRY_OPTIONS

if TYPE_CHECKING:
    from blocks.agent import ManagedAgent


def prompt_digest(prompt: str) -> str:
    """Short SHA-256 of the prompt (part of the start cache key, never sent anywhere)."""
    return hashlib.sha256(prompt.encode()).hexdigest()[:32]


def session_metadata(agent: ManagedAgent, **extra: str) -> dict[str, str]:
    """Metadata of a session started from a Prefect run: which flow run, task run, deployment
    and block started it (the cancel/crash hooks and the sweeper read it), plus ``extra``."""
    # Not prefect.runtime.deployment.id: outside a deployment it reads the flow run from the
    # API with a blocking call, which stalls the event loop (40 ms per session in a batch).
    context = FlowRunContext.get()
    deployment_id = context.flow_run.deployment_id if context and context.flow_run else None
    metadata = {
        FLOW_RUN_KEY: str(prefect.runtime.flow_run.id or ""),
        TASK_RUN_KEY: str(prefect.runtime.task_run.id or ""),
        DEPLOYMENT_KEY: str(deployment_id or ""),
        BLOCK_KEY: str(getattr(agent, "_block_document_name", None) or ""),
        AGENT_VERSION_KEY: str(agent.version),
        **extra,
    }
    return {k: v for k, v in metadata.items() if v}


def flow_run_ran_before() -> bool:
    """True when this flow run was running before this attempt (a retry, a re-run, a resume).

    Only then can a session of this run exist that this process has no record of.
    """
    context = FlowRunContext.get()
    run = context.flow_run if context else None
    if run is None:
        return False
    if (run.run_count or 0) > 1:
        return True
    # A resumed (paused or suspended) run does not count a new run, but it started earlier.
    state_at = run.state.timestamp if run.state is not None else None
    return bool(run.start_time and state_at and (state_at - run.start_time).total_seconds() > 1)


async def find_own_session(client: Any, agent: ManagedAgent, metadata: dict[str, str]) -> str | None:
    """The live session this flow run started with ``metadata``, found through the API.

    The API is the source of truth when a retry runs where the cached record is not (a new
    container): the session's metadata names the flow run and the run's idempotency key.
    """
    context = FlowRunContext.get()
    run = context.flow_run if context else None
    if run is None or not run.start_time:
        return None
    match = {FLOW_RUN_KEY: str(run.id), **metadata}
    session = await find_session(client, agent.agent_id, match, since=run.start_time - timedelta(minutes=1))
    if session is None or session.archived_at is not None or session.status == "terminated":
        return None
    return str(session.id)


def start_key(prompt_sha: str, resources: list[dict[str, Any]], key: str) -> str:
    """The run's idempotency key for one session: which prompt, resources and caller key."""
    material = json.dumps([prompt_sha, resources, key], sort_keys=True, default=str)
    return hashlib.sha256(material.encode()).hexdigest()[:32]


@task(
    name="create-session",
    cache_policy=RUN_ID + INPUTS,
    persist_result=True,
    result_serializer="json",
)
async def create_session(
    agent: ManagedAgent,
    resources: list[dict[str, Any]],
    prompt_sha: str,
    key: str = "",
    budget_usd: Decimal | None = None,
    vault_ids: list[str] | None = None,
) -> dict[str, Any]:
    """Create the session pinned to ``agent.agent_reference()`` (cached per flow run and inputs).

    Never retried blindly: :func:`managed_agents_core.lifecycle.acreate_session` guards against a
    commit-then-drop creating a second session. When the cached record is gone (a retry in a new
    container, without the first attempt's result storage), the session an earlier attempt of
    this flow run created is found by its metadata (flow-run id and idempotency key) instead.

    Args:
        agent: The ``ManagedAgent`` block.
        resources: File and memory-store resource params.
        prompt_sha: Digest of the prompt, so another prompt in the same run gets its own session.
        key: Extra cache-key part, so one flow run can start several sessions with equal inputs.
        budget_usd: The session's server-enforced spend ceiling (none when None).
        vault_ids: The session's vaults (none when empty).

    Returns:
        ``{"session_id": ..., "found": bool}``: ``found`` when an earlier attempt had created it.
    """
    title = prefect.runtime.flow_run.name or None
    idempotency = {START_KEY: start_key(prompt_sha, resources, key)}
    async with agent.credentials.get_async_client() as client:
        if flow_run_ran_before():
            found = await find_own_session(client, agent, idempotency)
            if found is not None:
                get_run_logger().info("Found session %s, started by an earlier attempt of this run", found)
                return {"session_id": found, "found": True}
        session = await acreate_session(
            client,
            agent_reference=agent.agent_reference(),
            environment_id=agent.environment_id,
            resources=resources,
            metadata=session_metadata(agent, **idempotency),
            title=title,
            budget_usd=budget_usd,
            vault_ids=vault_ids or (),
            # Read at the request, not passed in: the token never enters a task's parameters or cache key.
            github_token=agent.agithub_token,
        )
    get_run_logger().info("Created session %s", session.id)
    return {"session_id": str(session.id), "found": False}


async def tag_flow_run(session_id: str, *, detached: bool = False) -> None:
    """Tag this flow run ``session:<id>`` (kept with its other tags; a tag of an earlier session
    of the run is replaced), and ``managed-agents:detached`` when it is about to be released."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    run = context.flow_run
    # The engine read the run when it started (a re-run included), so its tags are current: no
    # read of our own. A plain update of the run (the labels endpoint reads, then writes, in one
    # deferred SQLite transaction, which a busy server refuses at once with a 503 and a 2 s back-off).
    tags = [t for t in run.tags if not t.startswith(SESSION_TAG_PREFIX)] + [session_tag(session_id)]
    if detached and DETACHED_TAG not in tags:
        tags.append(DETACHED_TAG)
    if tags != run.tags:
        async with get_client() as prefect_client:
            await prefect_client.update_flow_run(run.id, tags=tags)
        run.tags = tags


@task(name="start-session", **TRANSIENT_RETRY_OPTIONS)
async def start_session(
    agent: ManagedAgent,
    prompt: str,
    resources: list[dict[str, Any]] | None = None,
    key: str = "",
    budget_usd: Decimal | None = None,
    vault_ids: list[str] | None = None,
) -> StartedSession:
    """Start (or, on a flow retry, find again) this flow run's session.

    Emits ``managed-agents.session.started``; the flow-run tag follows beside the stream
    (:func:`tag_run`), so nothing stands between the create and the prompt.

    Args:
        agent: The ``ManagedAgent`` block.
        prompt: The first user message (sent later, once the stream is open).
        resources: File and memory-store resource params.
        key: Distinguishes sessions of one flow run that have the same agent, prompt and
            resources (e.g. batch items); a flow retry with the same key re-attaches.
        budget_usd: The session's server-enforced spend ceiling (none when None).
        vault_ids: The session's vaults (none when empty).
    """
    logger = get_run_logger()
    resources = resources or []
    digest = prompt_digest(prompt)
    # EAGER: the created session's cache record is written as soon as create_session succeeds,
    # not when this (outer) task does; otherwise a failure later in this task and its retry
    # would create a second session.
    with transaction(commit_mode=CommitMode.EAGER):
        # Calling an async task returns a coroutine at runtime; Prefect's overloads say State.
        state = await cast(
            "Awaitable[State[dict[str, Any]]]",
            create_session(agent, resources, digest, key, budget_usd, vault_ids, return_state=True),
        )
    created = await state.aresult()
    session_id = str(created["session_id"])
    reattached = state.name == "Cached" or bool(created.get("found"))
    if reattached:
        async with agent.credentials.get_async_client() as client:
            session = await client.beta.sessions.retrieve(session_id)
        if session.status == "terminated" or session.archived_at is not None:
            logger.warning(
                "Session %s from the previous attempt is %s; starting a new one",
                session_id,
                "archived" if session.archived_at else "terminated",
            )
            with transaction(commit_mode=CommitMode.EAGER):
                created = await create_session.with_options(refresh_cache=True)(
                    agent, resources, digest, key, budget_usd, vault_ids
                )
            session_id = str(created["session_id"])
            reattached = bool(created.get("found"))
    return announce_started(agent, session_id, reattached=reattached)


async def tag_run(session_id: str) -> None:
    """Tag the flow run with the session (runs beside the stream, never between the create and
    the prompt; the hooks also find the session by its metadata).

    A failure is logged, not raised: the session runs on, and the hooks fall back to the metadata.
    """
    try:
        await tag_flow_run(session_id)
    except Exception as exc:  # decoration only: never fail the session for it
        get_run_logger().warning("Could not tag this flow run with session %s: %s", session_id, exc)


def announce_started(agent: ManagedAgent, session_id: str, *, reattached: bool) -> StartedSession:
    """Log the start (or re-attach) of a session and emit ``managed-agents.session.started``."""
    console_url = str(agent.console_url(session_id))
    get_run_logger().info(
        "%s session %s: %s", "Re-attached to" if reattached else "Started", session_id, console_url
    )
    emit_managed_agents_event(
        "session.started",
        session_id,
        name=session_id,
        payload={"console_url": console_url, "reattached": reattached, "agent_id": agent.agent_id},
        related=agent_resources(agent),
    )
    return StartedSession(session_id=session_id, console_url=console_url, reattached=reattached)


@task(name="attach-session", **TRANSIENT_RETRY_OPTIONS)
async def attach_session(agent: ManagedAgent, session_id: str) -> StartedSession:
    """Re-attach this flow run to a session an earlier run started (nothing is created).

    Used when the run that started the session died for reasons of its own (a Prefect API
    outage, a lost worker): the new run streams the same turn to its end and collects the outputs.

    Args:
        agent: The ``ManagedAgent`` block the session was started from.
        session_id: The session to take over.

    Raises:
        SessionNotAttachableError: The session is archived, terminated, or belongs to another agent.
    """
    async with agent.credentials.get_async_client() as client:
        await attachable_session(
            client, session_id, agent_id=agent.agent_id, console_url=str(agent.console_url(session_id))
        )
    return announce_started(agent, session_id, reattached=True)


class PrefectObserver(LoggingObserver):
    """Logs at the block's verbosity and emits a Prefect event on each session status change.

    Args:
        logger: The task run logger.
        verbosity: ``summary``, ``tools`` or ``full``.
        session_id: The session.
        agent: The agent block: its id goes into event payloads, the agent and the block are
            the events' related resources.
    """

    def __init__(self, logger: Any, verbosity: Any, session_id: str, agent: ManagedAgent) -> None:
        super().__init__(logger, verbosity, session_id)
        self.agent_id = agent.agent_id
        self._related = agent_resources(agent)
        self.status = "starting"
        self.transcript: Transcript | None = None

    async def on_status(self, status: str, event: Any) -> None:
        """Log the change and emit ``managed-agents.session.<status>``."""
        await super().on_status(status, event)
        self.status = status
        payload: dict[str, Any] = {"event_id": str(getattr(event, "id", "") or ""), "agent_id": self.agent_id}
        reason = getattr(getattr(event, "stop_reason", None), "type", None)
        if reason:
            payload["stop_reason"] = reason
        emit_managed_agents_event(
            f"session.{status}", self.session_id, name=self.session_id, payload=payload, related=self._related
        )


@task(name="stream-session", cache_policy=NO_CACHE, **TRANSIENT_RETRY_OPTIONS)
async def stream_session(
    agent: ManagedAgent,
    session_id: str,
    turn: TurnRequest,
    answers: Mapping[str, ToolAnswer] | None = None,
    progress: bool = True,
    tag: bool = False,
) -> SessionRunReport:
    """Stream the session to the end of its turn; the kickoff is sent once the stream is open.

    Safe to retry: a retry re-attaches, and sends a first turn's kickoff only if the history has
    no user message yet. Keeps a progress artifact while it streams, emits the final
    ``managed-agents.session.completed`` / ``.failed`` event and, when the session did not
    complete (or the stream itself failed), publishes the session report and raises the typed
    exception.

    When the policy says ``ask`` for a pending tool call, the report comes back *without*
    raising and ``report.end.kind == "awaiting_approval"`` (``report.end.pending_calls`` lists
    the calls): the flow asks a person, then streams again with ``answers``.

    Args:
        agent: The ``ManagedAgent`` block (verbosity, credentials).
        session_id: The session to stream.
        turn: How the turn starts, is answered and how long it may take.
        answers: A person's verdicts by tool-use event id.
        progress: Keep a progress artifact (a batch's item runs do without: one artifact per item).
        tag: Tag the flow run with the session beside the stream (so the prompt goes out first).

    Raises:
        SessionError: A typed subclass carrying the session id and console URL.
    """
    logger = get_run_logger()
    if (prefect.runtime.task_run.run_count or 1) > 1:
        turn = turn.resumed()
    console_url = str(agent.console_url(session_id))
    observer = PrefectObserver(logger, agent.log_verbosity, session_id, agent)
    transcript = Transcript()
    async with (
        agent.credentials.get_async_client() as client,
        progress_artifact(
            session_id,
            console_url,
            lambda: (transcript.event_count, observer.status),
            max_duration=turn.max_duration,
            before=functools.partial(tag_run, session_id) if tag else None,
        )
        if progress
        else contextlib.nullcontext(ProgressMark()) as mark,
    ):
        tagging = asyncio.create_task(tag_run(session_id)) if tag and not progress else None
        try:
            report = await adrive_session(
                client,
                session_id,
                turn,
                console_url=console_url,
                answers=answers,
                observer=observer,
                transcript=transcript,
            )
        except Exception as exc:
            # Keep what was seen so far visible in the UI; a retry re-attaches and starts over.
            cut = SessionReport(
                agent_name=agent.agent_name,
                session_id=session_id,
                console_url=console_url,
                headline=f"Streaming stopped ({type(exc).__name__})",
                transcript=transcript,
                threads=list(transcript.threads.values()),
            )
            await publish_session_report(cut)
            raise
        finally:
            if tagging is not None:
                await tagging
        if report.end.kind == "awaiting_approval":
            mark.waiting = "a person's approval of a tool call"
    if report.end.kind == "awaiting_approval":
        await publish_session_report(turn_report(agent.agent_name, report, "Waiting for approval"))
        logger.info("Session %s waits for approval: %s", session_id, report.end.detail)
        return report
    await finish_turn(agent, report, logger)
    return report


async def finish_turn(agent: ManagedAgent, report: SessionRunReport, logger: Any) -> None:
    """Log the turn's warnings, emit ``managed-agents.session.completed`` (or ``.failed``); when
    the session did not complete, publish its report and raise the typed exception.

    The observer has already logged how the turn ended; a completed turn's report and final log
    line come later, with its outputs (:func:`tasks.reporting.publish_finished`).
    """
    outcome, usage = report.outcome, report.usage
    for warning in outcome.warnings:
        logger.warning(warning)
    emit_managed_agents_event(
        f"session.{outcome.event_kind}",
        report.session_id,
        name=report.session_id,
        payload={
            "agent_id": agent.agent_id,
            "status": report.status,
            "stop_reason": report.end.stop_reason,
            "event_count": report.transcript.event_count,
            "error": type(outcome.error).__name__ if outcome.error else None,
            # What an Automation may act on: spend and size, as the service reported them.
            "cost_usd": str(usage.cost_usd) if usage.cost_usd is not None else None,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
        },
        related=agent_resources(agent),
    )
    if outcome.error is not None:
        await publish_session_report(
            turn_report(agent.agent_name, report, f"Failed: {type(outcome.error).__name__}")
        )
    outcome.raise_for_failure()


@task(
    name="send-kickoff",
    cache_policy=RUN_ID + INPUTS,
    persist_result=True,
    result_serializer="json",
)
async def send_kickoff(agent: ManagedAgent, session_id: str, events: list[EventParam]) -> list[str]:
    """Send a detached turn's kickoff, once per flow run (cached: the re-run that follows the
    resume gets the ids back instead of sending again; a lost answer is resolved from the history).

    Args:
        agent: The ``ManagedAgent`` block (credentials).
        session_id: The session.
        events: The kickoff (``user.message`` or ``user.define_outcome``).

    Returns:
        The server ids of the sent events.
    """
    async with agent.credentials.get_async_client() as client:
        ids = await asend_turn_events(client, session_id, events)
    get_run_logger().info("Sent the prompt to session %s (%s)", session_id, ", ".join(ids))
    return ids


@task(
    name="send-follow-up",
    cache_policy=RUN_ID + INPUTS,
    persist_result=True,
    result_serializer="json",
)
async def send_follow_up(
    agent: ManagedAgent,
    session_id: str,
    events: list[EventParam],
    key: str = "",
) -> dict[str, list[str]]:
    """Send a follow-up turn's events to an existing session, once per flow run (cached).

    First lists the outputs earlier turns made (once their indexing settled), so this turn
    collects only its own files. A flow retry finds the cached answer instead of starting a
    second turn; a lost answer to the send itself is resolved from the history
    (:func:`managed_agents_core.lifecycle.asend_turn_events`).

    Args:
        agent: The ``ManagedAgent`` block (credentials).
        session_id: The session to continue.
        events: ``user.message`` / ``user.define_outcome`` event params.
        key: Distinguishes equal follow-ups sent by one flow run.

    Returns:
        ``event_ids`` (the stream engine's turn markers) and ``earlier_output_ids``, as a
        :class:`FollowUpTurn` dump (plain JSON, so the cached record reads back anywhere).
    """
    async with agent.credentials.get_async_client() as client:
        turn = await asend_follow_up(client, session_id, events)
    get_run_logger().info("Sent follow-up %s to session %s", ", ".join(turn.event_ids), session_id)
    return turn.model_dump()


@task(name="interrupt-and-archive", **TRANSIENT_RETRY_OPTIONS)
async def interrupt_and_archive(agent: ManagedAgent, session_id: str, turn_ended: bool = False) -> str:
    """Interrupt the session if it runs, wait until it is idle, then archive it (idempotent).

    Args:
        agent: The ``ManagedAgent`` block (credentials).
        session_id: The session.
        turn_ended: The run saw the turn end, so a ``running`` status is only the post-idle race:
            it is waited out and no interrupt is sent.

    Returns:
        ``archived``, ``already-archived`` or ``missing``.
    """
    async with agent.credentials.get_async_client() as client:
        return await ainterrupt_and_archive(
            client, session_id, logger=get_run_logger(), turn_ended=turn_ended
        )
