"""One pipeline for every way a session runs: check, start, drive, finish.

The single-session flow, the follow-up flow, batch items (as flow runs or as task runs) and
``ManagedAgent.trigger()`` all run a session through :class:`SessionPipeline`, so a feature
(inputs, memory stores and their audit, custom tools, outcomes, outputs, approvals where the
caller can ask a person) is written once and works for each of them. What differs is *how* a
step runs, which the caller supplies as :class:`SessionSteps`:

- :class:`~managed_agents_core.direct_steps.DirectSteps`: plain SDK calls in this process (the
  ``JobRun``; batch items as task runs build on it);
- ``tasks.steps.TaskSteps``: each step a Prefect task run, with artifacts and events (the flows).

The order is fixed here: parameters are checked before anything is uploaded or created; the
session is created (or found again, or re-attached) before the stream opens; the kickoff is sent
by the stream once it is open; outputs are collected after the turn's end, memory changes read
after the outputs, the session archived last.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

import anthropic
from pydantic import BaseModel, Field

from .budgets import budget_cents
from .events import EventParam, user_message
from .exceptions import ConfigurationError
from .inputs import InputFile, MemoryStoreAttachment, UploadedFile, check_input_files
from .lifecycle import SessionRunReport, asend_turn_events, build_session_result
from .memory_audit import MemoryChange
from .outcome_spec import OutcomeSpec
from .output_sinks import OutputSink
from .outputs import earlier_output_ids
from .repositories import GitHubRepository
from .results import OutcomeEvaluation, OutputFile, SessionResult
from .roots import check_inside_roots, input_roots, output_roots
from .tool_calls import PendingToolCall, ToolAnswer
from .turn import ConfirmationPolicy, CustomToolDispatcher, TurnRequest
from .vaults import chosen_vaults

DETACH_TIMEOUT_SECONDS = 24 * 3600.0
"""How long a detached run waits for its session when no turn limit is set (the suspended run
fails if it is resumed later)."""

OutputTarget = str | os.PathLike[str] | OutputSink
"""Where a session's output files go: a local folder, or an output sink."""


class StartedSession(BaseModel):
    """A session this run drives."""

    session_id: str = Field(description="The session's id.")
    console_url: str = Field(description="Where to inspect the session.")
    reattached: bool = Field(description="True when the session was started by an earlier attempt or run.")


class FollowUpTurn(BaseModel):
    """A follow-up turn that was sent: its event ids and what earlier turns had produced."""

    event_ids: list[str] = Field(description="Server ids of the sent events (the turn's markers).")
    earlier_output_ids: list[str] = Field(
        description="Output files of earlier turns, listed before the send: never this turn's outputs."
    )


@dataclass(frozen=True)
class SessionRequest:
    """What one run of a session is asked to do; built once by the entry point.

    Args:
        prompt: The first user message (or the follow-up message).
        files: Local files to upload and mount (first turn only).
        memory_stores: Memory stores to attach (first turn only); what the session writes to
            them is listed after the turn.
        resources: Further session resource params, passed as given.
        output_dir: Where the turn's output files go; not collected when None.
        policy: How tool confirmations are answered (default: fail).
        max_duration: Wall-clock limit of the turn in seconds (default: the agent's).
        archive_when_done: Archive the session once its outputs were collected.
        custom_tools: Runs the agent's custom tool calls.
        outcome: Send this outcome (``user.define_outcome``) instead of the prompt.
        session_id: Re-attach to this session (a first turn an earlier run started), or, with
            ``follow_up``, the session to continue.
        follow_up: Send a new turn to ``session_id``.
        key: Tells apart sessions one run starts with equal inputs (a batch item's key).
        title: The session's title.
        metadata: Extra session metadata.
        budget_usd: The session's server-enforced spend ceiling (list cost, USD): set when it is
            created (default: the agent's), or raised before a follow-up's turn.
        repositories: GitHub repositories to mount (first turn only); the token is the agent's.
        vault_ids: Vaults of a new session, among the agent's (default: all of the agent's;
            empty: none); a follow-up keeps the session's.
        detach: Send the kickoff, then let the caller release the run until the session stops
            working (a suspended deployment run); the turn is then streamed from the history.
    """

    prompt: str
    files: tuple[InputFile | str, ...] = ()
    memory_stores: tuple[MemoryStoreAttachment | str, ...] = ()
    resources: tuple[Mapping[str, Any], ...] = ()
    output_dir: OutputTarget | None = None
    policy: ConfirmationPolicy | None = None
    max_duration: float | None = None
    archive_when_done: bool = False
    custom_tools: CustomToolDispatcher | None = None
    outcome: OutcomeSpec | None = None
    session_id: str | None = None
    follow_up: bool = False
    key: str = ""
    title: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    budget_usd: Decimal | None = None
    repositories: tuple[GitHubRepository | str | Mapping[str, Any], ...] = ()
    vault_ids: tuple[str, ...] | None = None
    detach: bool = False

    def __post_init__(self) -> None:
        if self.follow_up and not self.session_id:
            raise ConfigurationError("a follow-up needs the session_id of the session to continue")
        if self.detach and self.follow_up:
            raise ConfigurationError("a follow-up cannot detach; detach the first turn of a session")
        if self.budget_usd is not None:
            budget_cents(self.budget_usd)  # at least a cent, checked before anything is created

    def kickoff(self) -> tuple[EventParam, ...]:
        """The events that start the turn: the outcome to work towards, or the prompt."""
        return (self.outcome.event(),) if self.outcome is not None else (user_message(self.prompt),)

    def start_key(self) -> str:
        """Part of the idempotency key of the session this request creates."""
        return "|".join(
            part for part in (self.key, self.outcome.model_dump_json() if self.outcome else "") if part
        )


async def asend_follow_up(
    client: anthropic.AsyncAnthropic, session_id: str, events: list[EventParam]
) -> FollowUpTurn:
    """Send a follow-up turn's events; first list the outputs earlier turns made (once their
    indexing settled), so the turn collects only its own files. A lost answer to the send is
    resolved from the history (:func:`~managed_agents_core.lifecycle.asend_turn_events`)."""
    earlier = await earlier_output_ids(client, session_id)
    ids = await asend_turn_events(client, session_id, events)
    return FollowUpTurn(event_ids=ids, earlier_output_ids=earlier)


class SessionAgent(Protocol):
    """What the pipeline reads of the agent it runs (``blocks.ManagedAgent`` is one)."""

    @property
    def agent_id(self) -> str:
        """The agent's id."""

    @property
    def version(self) -> int:
        """The pinned version."""

    @property
    def max_duration_seconds(self) -> float | None:
        """Default wall-clock limit of a turn."""

    @property
    def budget_usd(self) -> Decimal | None:
        """Default budget of a new session (list cost, USD)."""

    @property
    def vault_ids(self) -> list[str]:
        """The vaults of a new session by default, and the only ones it may be given."""


@dataclass
class FinishedSession:
    """Everything a finished turn produced, for the caller's report."""

    session: StartedSession
    report: SessionRunReport
    result: SessionResult
    outputs: list[OutputFile] | None
    """None when the request named no output folder."""
    memory_changes: list[MemoryChange] | None
    """None when no memory store was attached by this run."""
    follow_up: bool

    def unmet_outcomes(self) -> list[OutcomeEvaluation]:
        """The outcomes the session's final grade did not call satisfied."""
        return [e for e in self.result.outcome_evaluations if e.result != "satisfied"]


class SessionSteps(Protocol):
    """How each step of the pipeline runs (plain calls, or Prefect task runs with artifacts)."""

    can_ask: bool
    """Whether :meth:`ask` can hand tool calls to a person (only a flow run can pause)."""

    @property
    def can_detach(self) -> bool:
        """Whether :meth:`detach` can release the run while the session works (a deployment run)."""

    @property
    def log(self) -> logging.Logger | logging.LoggerAdapter[Any]:
        """Where the pipeline says what it does (the run's logger in Prefect)."""

    async def upload(self, files: Sequence[InputFile | str]) -> list[UploadedFile]:
        """Upload the input files; return them in order."""

    async def memory_resources(self, attachments: Sequence[MemoryStoreAttachment]) -> list[dict[str, str]]:
        """Resolve the memory-store attachments into session resource params."""

    async def snapshot_memory(self, store_ids: list[str]) -> dict[str, str | None]:
        """Each store's newest version id, before the session runs."""

    async def create(self, request: SessionRequest, resources: list[dict[str, Any]]) -> StartedSession:
        """Create the session exactly once (or find the one an earlier attempt created)."""

    async def attach(self, session_id: str, *, follow_up: bool) -> StartedSession:
        """Take over a session an earlier run started (or that a follow-up continues)."""

    async def send_follow_up(self, session_id: str, events: list[EventParam]) -> FollowUpTurn:
        """Send a follow-up turn's events once, however often it is called."""

    async def raise_budget(self, session_id: str, budget_usd: Decimal) -> None:
        """Set a running session's budget (before a follow-up's turn)."""

    async def detach(
        self, session: StartedSession, kickoff: tuple[EventParam, ...], wait_seconds: float
    ) -> None:
        """Send the kickoff once, then release the run until the session stops working (returns
        when the run goes on: at once on the re-run that follows the resume)."""

    async def stream(
        self, session: StartedSession, turn: TurnRequest, answers: Mapping[str, ToolAnswer]
    ) -> SessionRunReport:
        """Drive the turn to its end; raise the typed error unless it completed or awaits approval."""

    async def ask(
        self, calls: tuple[PendingToolCall, ...], policy: ConfirmationPolicy, session: StartedSession
    ) -> dict[str, ToolAnswer]:
        """A person's verdicts on the pending calls (only when ``can_ask``)."""

    async def collect(
        self,
        session_id: str,
        destination: OutputTarget,
        *,
        exclude_file_ids: Sequence[str],
        turn_ended_at: datetime | None,
    ) -> list[OutputFile]:
        """Download the turn's output files into ``destination``."""

    async def memory_changes(self, snapshot: dict[str, str | None]) -> list[MemoryChange]:
        """Every memory version written since ``snapshot``."""

    async def archive(self, session_id: str) -> None:
        """Archive the session (its turn has ended)."""

    async def report(self, finished: FinishedSession) -> None:
        """Show what the turn produced (logs, artifacts)."""


class SessionPipeline:
    """Runs one session turn through :class:`SessionSteps`, in stages a ``JobRun`` can split.

    Example:
        ```python
        pipeline = SessionPipeline(agent, DirectSteps(agent), SessionRequest(prompt="Hi"))
        result = await pipeline.run()
        ```

    Args:
        agent: The agent (its id, pinned version, default limit and roots).
        steps: How each step runs.
        request: What the run is asked to do.
    """

    def __init__(self, agent: SessionAgent, steps: SessionSteps, request: SessionRequest) -> None:
        self.agent = agent
        self.steps = steps
        if request.budget_usd is None and not request.follow_up and request.session_id is None:
            request = replace(request, budget_usd=agent.budget_usd)  # a new session: the agent's default
        self.request = request
        self.session: StartedSession | None = None
        self.report: SessionRunReport | None = None
        self._uploaded: list[UploadedFile] = []
        self._snapshot: dict[str, str | None] | None = None
        self._follow_up: FollowUpTurn | None = None
        self.finished: FinishedSession | None = None
        """What the turn produced, once :meth:`finish` ran."""

    def check(self) -> None:
        """Check what the request names before anything is uploaded or created.

        Raises:
            ConfigurationError: The policy asks a person where nobody can be asked, or the run
                asks to detach where it cannot be released (not a deployment run).
            PathOutsideRootsError: An input or the output folder is outside its roots.
            InputFileError: An input file is missing or unreadable, or two share a mount path.
            VaultNotAllowedError: ``vault_ids`` names a vault the agent's block does not list.
        """
        request = self.request
        if request.detach and not self.steps.can_detach:
            raise ConfigurationError(
                "detach=True needs a deployment run of run_agent_session (Prefect releases the worker "
                "of deployment runs only): run it through a deployment, or leave detach off to stream"
            )
        if request.policy is not None and request.policy.asks() and not self.steps.can_ask:
            raise ConfigurationError(
                "This run cannot ask a person to confirm a tool call (only a flow run can pause): "
                "run it through run_agent_session, or use a policy without 'ask'"
            )
        if isinstance(request.output_dir, str | os.PathLike):
            check_inside_roots(request.output_dir, output_roots(self.agent), kind="output", what="output_dir")
        if request.session_id is None:
            check_input_files(list(request.files), input_roots(self.agent))
            for repository in request.repositories:
                GitHubRepository.coerce(repository)
            self.request = replace(request, vault_ids=chosen_vaults(request.vault_ids, self.agent.vault_ids))

    async def start(self) -> StartedSession:
        """Check the request, then create (or re-attach to) the session; nothing is sent yet."""
        if self.session is not None:
            return self.session
        self.check()
        request, steps = self.request, self.steps
        if request.session_id is not None:
            if request.files or request.memory_stores or request.repositories:
                steps.log.info(
                    "Re-attaching to %s: files, memory stores and repositories are already attached",
                    request.session_id,
                )
            self.session = await steps.attach(request.session_id, follow_up=request.follow_up)
            if request.follow_up and request.budget_usd is not None:
                await steps.raise_budget(request.session_id, request.budget_usd)
            return self.session
        self._uploaded = await steps.upload(request.files) if request.files else []
        attachments = [MemoryStoreAttachment.coerce(m) for m in request.memory_stores]
        memory = await steps.memory_resources(attachments) if attachments else []
        store_ids = [r["memory_store_id"] for r in memory]
        # The audit's "before": the stores' newest versions, so what the session writes is listed after.
        self._snapshot = await steps.snapshot_memory(store_ids) if store_ids else None
        repositories = [GitHubRepository.coerce(r).resource_param(token=None) for r in request.repositories]
        resources = [
            *(u.resource_param() for u in self._uploaded),
            *memory,
            *repositories,
            *map(dict, request.resources),
        ]
        self.session = await steps.create(request, resources)
        return self.session

    def _turn_limit(self) -> float | None:
        request = self.request
        return request.max_duration if request.max_duration is not None else self.agent.max_duration_seconds

    def _first_turn(self, session: StartedSession) -> TurnRequest:
        request = self.request
        options: dict[str, Any] = {
            "policy": request.policy,
            "custom_tools": request.custom_tools,
            "max_duration": self._turn_limit(),
        }
        if not request.follow_up:
            return TurnRequest(kickoff=request.kickoff(), resume=session.reattached, **options)
        events = list(request.kickoff())

        async def send_turn() -> list[str]:
            # Sent once: the next stretch after an approval gets the same ids back (and the
            # Prefect step is cached per flow run, so a flow retry does too).
            if self._follow_up is None:
                self._follow_up = await self.steps.send_follow_up(session.session_id, events)
            return self._follow_up.event_ids

        return TurnRequest(send_turn=send_turn, **options)

    async def drive(self) -> SessionRunReport:
        """Stream the turn to its end, asking a person whenever the policy says ``ask``.

        Raises:
            SessionError: A typed subclass carrying the session id, when the turn did not complete.
        """
        if self.report is not None:
            return self.report
        session = await self.start()
        turn = self._first_turn(session)
        if self.request.detach:
            # A session named by session_id got its prompt from the run that started it (the
            # resumed stream sends it only if the history lacks it).
            kickoff = () if self.request.session_id else turn.kickoff
            await self.steps.detach(session, kickoff, self._turn_limit() or DETACH_TIMEOUT_SECONDS)
            turn = turn.resumed()  # the kickoff went out before the run was released
        answers: dict[str, ToolAnswer] = {}
        while True:
            report = await self.steps.stream(session, turn, answers)
            if report.end.kind != "awaiting_approval":
                self.report = report
                return report
            turn = turn.resumed()  # the kickoff went out in this stretch
            answers.update(
                await self.steps.ask(
                    report.end.pending_calls, self.request.policy or ConfirmationPolicy(), session
                )
            )

    async def finish(self) -> SessionResult:
        """Collect the outputs, list the memory changes, archive if asked; return the result.

        Runs once: later calls return the same result.
        """
        if self.finished is not None:
            return self.finished.result
        report = await self.drive()
        session = self.session
        assert session is not None
        request = self.request
        outputs: list[OutputFile] | None = None
        if request.output_dir is not None:
            earlier = self._follow_up.earlier_output_ids if self._follow_up is not None else []
            outputs = await self.steps.collect(
                session.session_id,
                request.output_dir,
                exclude_file_ids=[*(u.file_id for u in self._uploaded), *earlier],
                turn_ended_at=report.ended_at,
            )
        changes = await self.steps.memory_changes(self._snapshot) if self._snapshot is not None else None
        if request.archive_when_done:
            await self.steps.archive(session.session_id)
        result = build_session_result(
            report,
            agent_id=self.agent.agent_id,
            agent_version=self.agent.version,
            output_files=outputs,
            memory_changes=changes,
        )
        self.finished = FinishedSession(
            session, report, result, outputs, changes, follow_up=request.follow_up
        )
        await self.steps.report(self.finished)
        return result

    async def run(self) -> SessionResult:
        """All stages: start, drive, finish."""
        return await self.finish()
