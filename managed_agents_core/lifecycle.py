"""A session's lifecycle, the steps every caller shares: create it once, drive it to the end of
its turn, build its result, interrupt and archive it.

``ManagedAgent.trigger()``'s ``JobRun`` (:mod:`managed_agents_core.lifecycle`) and the ``run_agent_session``
flow's tasks call the same functions (:func:`acreate_session`, :func:`adrive_session`,
:func:`ainterrupt_and_archive`, :func:`build_session_result`), so both paths stream, classify
and clean up identically.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import anthropic

from .budgets import budget_param
from .events import EventParam
from .exceptions import SessionNotAttachableError
from .keys import CREATE_TOKEN_KEY, holds
from .memory_audit import MemoryChange
from .outcome import Outcome, SessionEnd, classify
from .outcome_spec import session_evaluations
from .repositories import needs_token, with_token
from .results import OutputFile, SessionResult, ThreadSummary, UsageSummary
from .retry_policy import LOOP_ATTEMPTS, is_transient_error, retrying
from .send_once import send_once
from .session_stream import (
    SessionStream,
    StreamObserver,
    interrupt_session,
    poll_history,
    wait_until_not_running,
)
from .settings import RuntimeSettings
from .threads import alist_threads
from .tool_calls import ToolAnswer
from .transcript import Transcript, content_text
from .turn import TurnRequest

logger = logging.getLogger(__name__)

Verbosity = Literal["summary", "tools", "full"]

_TOOL_EVENTS = frozenset(
    {
        "agent.tool_use",
        "agent.mcp_tool_use",
        "agent.custom_tool_use",
        "agent.tool_result",
        "agent.mcp_tool_result",
        "agent.thread_message_sent",
        "agent.thread_message_received",
    }
)
_MESSAGE_EVENTS = frozenset({"agent.message", "user.message", "agent.thinking", "user.tool_confirmation"})


# --- create ----------------------------------------------------------------------------------


async def sessions_matching(
    client: anthropic.AsyncAnthropic,
    agent_id: str,
    metadata: Mapping[str, str],
    *,
    since: datetime,
    scan_limit: int | None = None,
) -> AsyncGenerator[Any, None]:
    """The agent's sessions created since ``since`` whose metadata holds every pair given.

    Newest first, page by page (stop reading with ``aclosing`` once you have what you need).
    This is how a run finds the sessions it started when it kept no record of them: a create
    whose answer was lost, a retry in a new container, a cancel hook in another process.

    Args:
        client: The async SDK client.
        agent_id: Only this agent's sessions are read.
        metadata: Pairs that must all be in the session's metadata (under current or old key names).
        since: Only sessions created at or after this time are read.
        scan_limit: Stop after reading this many sessions (all when None).
    """
    scanned = 0
    async for session in client.beta.sessions.list(
        agent_id=agent_id, created_at_gte=since, order="desc", limit=100
    ):
        if holds(session.metadata, metadata):
            yield session
        scanned += 1
        if scan_limit is not None and scanned >= scan_limit:
            return


async def find_session(
    client: anthropic.AsyncAnthropic, agent_id: str, metadata: Mapping[str, str], *, since: datetime
) -> Any | None:
    """The newest session of :func:`sessions_matching`, or None (reads at most 500 sessions)."""
    async with aclosing(sessions_matching(client, agent_id, metadata, since=since, scan_limit=500)) as found:
        async for session in found:
            return session
    return None


async def acreate_session(
    client: anthropic.AsyncAnthropic,
    *,
    agent_reference: dict[str, Any],
    environment_id: str,
    resources: list[dict[str, Any]] | None = None,
    metadata: dict[str, str] | None = None,
    title: str | None = None,
    budget_usd: Decimal | None = None,
    vault_ids: Sequence[str] = (),
    github_token: Callable[[], Awaitable[str | None]] | None = None,
) -> Any:
    """Create a session exactly once, even when the API commits it and the answer is lost.

    The SDK's own retry would repeat a committed ``POST /v1/sessions`` (two sessions, two bills),
    so the create goes through :func:`~managed_agents_core.send_once.send_once`: after a failure
    that may have landed, the session is looked up by a one-time metadata token before trying
    again.

    Args:
        client: The async SDK client.
        agent_reference: ``{"type": "agent", "id", "version"}`` (the pinned version).
        environment_id: The environment to run in.
        resources: File and memory-store resource params.
        metadata: Session metadata (at most 15 keys; one is used for the token).
        title: Session title.
        budget_usd: The session's server-enforced spend ceiling (list cost, USD); none when None.
        vault_ids: Vaults whose credentials the session's MCP servers and secrets use.
        github_token: Reads the token of the repository resources (only when there are some);
            it is added here, to the request only, so it is never logged or cached.

    Returns:
        The SDK's ``BetaManagedAgentsSession``.
    """
    resources = resources or []
    if github_token is not None and needs_token(resources):
        resources = with_token(resources, await github_token())
    token = uuid.uuid4().hex
    full_metadata = {**(metadata or {}), CREATE_TOKEN_KEY: token}
    since = datetime.now(UTC) - timedelta(minutes=10)
    once = client.with_options(max_retries=0)
    kwargs: dict[str, Any] = {
        "agent": agent_reference,
        "environment_id": environment_id,
        "metadata": full_metadata,
        "resources": resources,
    }
    if title:
        kwargs["title"] = title[:256]
    if budget_usd is not None:
        kwargs["budget"] = budget_param(budget_usd)
    if vault_ids:
        kwargs["vault_ids"] = list(vault_ids)

    async def create() -> Any:
        return await once.beta.sessions.create(**kwargs)

    async def find() -> Any:
        return await find_session(client, str(agent_reference["id"]), {CREATE_TOKEN_KEY: token}, since=since)

    return await send_once(create, find)


# --- follow-up turns ---------------------------------------------------------------------------


async def attachable_session(
    client: anthropic.AsyncAnthropic,
    session_id: str,
    *,
    agent_id: str,
    console_url: str,
    follow_up: bool = False,
) -> Any:
    """The session, when this run may take it over (or continue it): live, and started from
    ``agent_id``, so a ``session_id`` parameter reaches only the block's own agent's sessions.

    Raises:
        SessionNotAttachableError: The session is archived, terminated, or another agent's.
    """
    session = await client.beta.sessions.retrieve(session_id)
    problem = None
    if session.archived_at is not None or session.status == "terminated":
        problem = "is archived" if session.archived_at is not None else "is terminated"
    elif session.agent.id != agent_id:
        problem = f"belongs to agent {session.agent.id}, not to this block's agent {agent_id}"
    if problem:
        hint = (
            "continue one of this agent's live sessions"
            if follow_up
            else "run without session_id to start a new one"
        )
        raise SessionNotAttachableError(
            f"Cannot {'continue' if follow_up else 're-attach'}: the session {problem}; {hint}",
            session_id=session_id,
            console_url=console_url,
        )
    return session


async def asend_turn_events(
    client: anthropic.AsyncAnthropic,
    session_id: str,
    events: list[EventParam],
    *,
    settings: RuntimeSettings | None = None,
) -> list[str]:
    """Send the events that start a new turn exactly once; return their server ids.

    The SDK's own retry would repeat a committed send (a second turn), so the send goes through
    :func:`~managed_agents_core.send_once.send_once`: after a failure that may have landed, the
    history is compared with what it held before, and user events that appeared since are
    taken as ours instead of sending again.
    The history lags the writes, so it is watched for ``history_lag_allowance`` seconds before
    a send is taken as lost.

    Args:
        client: The async SDK client.
        session_id: The session (idle or running: events queue).
        events: ``user.message`` / ``user.define_outcome`` event params.
        settings: Runtime timing (the environment's when None).
    """
    allowance = (settings or RuntimeSettings()).history_lag_allowance
    before = set(await poll_history(client, session_id, lambda ids: True, within=0))
    once = client.with_options(max_retries=0)

    async def send() -> list[str]:
        sent = await once.beta.sessions.events.send(session_id, events=events)
        return [str(e.id) for e in sent.data or []]

    async def find() -> list[str] | None:
        listed = await poll_history(
            client,
            session_id,
            lambda ids: len([i for i in ids if i not in before]) >= len(events),
            within=allowance,
        )
        appeared = [i for i in listed if i not in before]
        return appeared[: len(events)] if len(appeared) >= len(events) else None

    return await send_once(send, find)


# --- observe ---------------------------------------------------------------------------------


class LoggingObserver:
    """Logs what a session does at a chosen verbosity.

    ``summary``: status changes, errors, reconnects; ``tools``: plus tool calls and results, and
    the messages a coordinator and its callees exchange; ``full``: plus every message. Per-event work is a set lookup unless the event is logged.

    Args:
        logger: Where to log (a Prefect run logger inside runs).
        verbosity: ``summary``, ``tools`` or ``full``.
        session_id: Prefix for log lines.
    """

    def __init__(
        self, logger: logging.Logger | logging.LoggerAdapter[Any], verbosity: Verbosity, session_id: str
    ):
        self.logger = logger
        self.session_id = session_id
        self._logged: frozenset[str] = frozenset({"session.error"})
        if verbosity in ("tools", "full"):
            self._logged |= _TOOL_EVENTS
        if verbosity == "full":
            self._logged |= _MESSAGE_EVENTS

    def on_event(self, event: Any) -> None:
        """Log the event when the verbosity includes it."""
        kind = getattr(event, "type", "")
        if kind not in self._logged:
            return
        if kind == "session.error":
            error = getattr(event, "error", None)
            retry = getattr(getattr(error, "retry_status", None), "type", "unknown")
            self.logger.warning(
                "session.error %s (%s): %s", getattr(error, "type", "?"), retry, getattr(error, "message", "")
            )
        elif kind in ("agent.tool_use", "agent.mcp_tool_use", "agent.custom_tool_use"):
            self.logger.info(
                "tool call %s %s", getattr(event, "name", "?"), _short(getattr(event, "input", {}))
            )
        elif kind in ("agent.tool_result", "agent.mcp_tool_result"):
            status = "error" if getattr(event, "is_error", False) else "ok"
            self.logger.info(
                "tool result %s: %s", status, _short(content_text(getattr(event, "content", None)))
            )
        elif kind == "agent.thread_message_sent":
            self.logger.info(
                "delegated to %s: %s",
                event.to_agent_name or event.to_session_thread_id,
                _short(content_text(event.content)),
            )
        elif kind == "agent.thread_message_received":
            self.logger.info(
                "reply from %s: %s",
                event.from_agent_name or event.from_session_thread_id,
                _short(content_text(event.content)),
            )
        elif kind == "agent.thinking":
            self.logger.info("agent is thinking")
        elif kind == "user.tool_confirmation":
            self.logger.info("tool confirmation %s: %s", getattr(event, "tool_use_id", "?"), event.result)
        else:
            who = "agent" if kind.startswith("agent.") else "user"
            self.logger.info("%s: %s", who, _short(content_text(getattr(event, "content", None)), 4000))

    async def on_status(self, status: str, event: Any) -> None:
        """Log a status change."""
        reason = getattr(getattr(event, "stop_reason", None), "type", None)
        suffix = f" ({reason})" if reason else ""
        self.logger.info("session %s is %s%s", self.session_id, status, suffix)

    async def on_reconnect(self, attempt: int, error: BaseException | None) -> None:
        """Log a reconnect at debug level (they are routine)."""
        self.logger.debug(
            "stream reconnect %d (%s)", attempt, type(error).__name__ if error else "end of stream"
        )

    def on_waiting(self, detail: str) -> None:
        """Say that the run is still waiting, and on what."""
        self.logger.info(detail)


def _short(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- drive -----------------------------------------------------------------------------------


@dataclass
class SessionRunReport:
    """Everything known once a session's turn ended.

    Attributes:
        session_id: The session's id.
        console_url: Where to inspect it.
        end: How the stream loop ended.
        outcome: The classified end state.
        transcript: What the run saw.
        session: The final ``BetaManagedAgentsSession`` (retrieved after the post-idle race).
        ended_at: When this client saw the turn end (its own clock; outputs are indexed after it).
        turn_started_at: When the service processed the turn's kickoff (its clock), if seen.
        threads: A multi-agent session's threads with their usage (empty for one agent).
    """

    session_id: str
    console_url: str
    end: SessionEnd
    outcome: Outcome
    transcript: Transcript
    session: Any
    ended_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    turn_started_at: datetime | None = None
    threads: list[ThreadSummary] = field(default_factory=list)

    @property
    def status(self) -> str:
        """Final status reported by the service."""
        return str(getattr(self.session, "status", "unknown"))

    @property
    def usage(self) -> UsageSummary:
        """Usage and cost: the session's own cumulative snapshot, else what the stream reported."""
        usage = getattr(self.session, "usage", None)
        if usage is not None and (
            getattr(usage, "input_tokens", None) or getattr(usage, "output_tokens", None)
        ):
            return UsageSummary.from_session_usage(usage)
        return self.transcript.usage


async def adrive_session(
    client: anthropic.AsyncAnthropic,
    session_id: str,
    turn: TurnRequest,
    *,
    console_url: str,
    answers: Mapping[str, ToolAnswer] | None = None,
    observer: StreamObserver | None = None,
    transcript: Transcript | None = None,
) -> SessionRunReport:
    """Stream a session to the end of its turn, wait out the post-idle race and classify the end.

    Args:
        client: The async SDK client.
        session_id: The session.
        turn: How the turn starts, is answered and how long it may take.
        console_url: The session's console URL (carried by typed exceptions).
        answers: A person's verdicts by tool-use event id (they win over the policy).
        observer: Receives events and status changes.
        transcript: Accumulator (a fresh one when None).

    Returns:
        The report; ``report.outcome.raise_for_failure()`` raises the typed exception.
    """
    transcript = transcript if transcript is not None else Transcript()
    engine = SessionStream(
        client, session_id, turn, answers=answers, transcript=transcript, observer=observer
    )
    end = await engine.run()
    ended_at = datetime.now(UTC)
    session = await wait_until_not_running(client, session_id)
    if session.status in ("running", "rescheduling") and end.kind == "idle":
        logger.warning(
            "session %s still reports %s after its turn ended; its final usage may be incomplete",
            session_id,
            session.status,
        )
    outcome = classify(
        end, transcript.errors, session_id=session_id, console_url=console_url, max_duration=turn.max_duration
    )
    return SessionRunReport(
        session_id,
        console_url,
        end,
        outcome,
        transcript,
        session,
        ended_at=ended_at,
        turn_started_at=engine.turn_started_at,
        threads=await alist_threads(client, session_id, transcript.threads),
    )


def build_session_result(
    report: SessionRunReport,
    *,
    agent_id: str,
    agent_version: int,
    output_files: list[OutputFile] | None = None,
    memory_changes: list[MemoryChange] | None = None,
) -> SessionResult:
    """Assemble the typed result of a successful run."""
    return SessionResult(
        session_id=report.session_id,
        agent_id=agent_id,
        agent_version=agent_version,
        status=report.status,
        stop_reason=report.end.stop_reason,
        final_message=report.transcript.final_message,
        usage=report.usage,
        output_files=output_files or [],
        event_count=report.transcript.event_count,
        errors=list(report.transcript.errors),
        console_url=report.console_url,
        outcome_evaluations=session_evaluations(report.session),
        memory_changes=memory_changes or [],
        threads=list(report.threads),
    )


# --- clean up --------------------------------------------------------------------------------


async def ainterrupt_and_archive(
    client: anthropic.AsyncAnthropic,
    session_id: str,
    *,
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    settle_seconds: float = 30.0,
    turn_ended: bool = False,
) -> str:
    """Interrupt a session if it runs, wait until it is not running, then archive it.

    Idempotent: an archived or missing session is left alone. Archive is refused while the
    session runs, and briefly after its idle (the post-idle race: the status still says
    running), so it waits for the status to settle and retries a refused archive.

    Args:
        client: The async SDK client.
        session_id: The session.
        logger: Where to log.
        settle_seconds: Longest wait for the session to stop running.
        turn_ended: The caller saw the turn end: a ``running`` status is the post-idle race,
            so no interrupt is sent, the status is only waited out.

    Returns:
        What happened: ``archived``, ``already-archived`` or ``missing``.
    """
    log = logger or logging.getLogger(__name__)
    try:
        session = await client.beta.sessions.retrieve(session_id)
    except anthropic.NotFoundError:
        log.info("session %s does not exist any more; nothing to clean up", session_id)
        return "missing"
    if getattr(session, "archived_at", None):
        return "already-archived"
    if session.status in ("running", "rescheduling"):
        if not turn_ended:
            log.info("interrupting session %s", session_id)
            try:
                await interrupt_session(client, session_id)
            except anthropic.APIStatusError as exc:
                log.warning(
                    "interrupt of session %s refused (%s); archiving anyway", session_id, exc.status_code
                )
        session = await wait_until_not_running(client, session_id, within=settle_seconds)
    once = client.with_options(max_retries=0)
    async for attempt in retrying(
        LOOP_ATTEMPTS,
        retry_on=lambda e: (
            is_transient_error(e) or isinstance(e, anthropic.BadRequestError | anthropic.ConflictError)
        ),
        multiplier=0.3,
        longest=3,
    ):
        with attempt:
            try:
                await once.beta.sessions.archive(session_id)
            except (anthropic.BadRequestError, anthropic.ConflictError):
                current = await client.beta.sessions.retrieve(session_id)
                if getattr(current, "archived_at", None):
                    return "already-archived"
                raise
    log.info("archived session %s", session_id)
    return "archived"
