"""The session pipeline's steps as plain SDK calls in this process (no Prefect).

Used by ``ManagedAgent.trigger()``'s ``JobRun``; batch items run as task runs build on it. Each
step opens its own client, so the stages of a ``JobRun`` may run in different event loops (its
sync methods each run one). Input files are uploaded every time (the flows deduplicate them
through Prefect's cache); a person cannot be asked to confirm a tool call.
"""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

import anthropic
import anyio

from .budgets import araise_budget
from .events import EventParam
from .exceptions import ConfigurationError
from .inputs import (
    InputFile,
    LocalInput,
    MemoryStoreAttachment,
    UploadedFile,
    check_input_files,
    check_uploaded_size,
    file_sha256,
)
from .keys import AGENT_VERSION_KEY
from .lifecycle import (
    LoggingObserver,
    SessionRunReport,
    Verbosity,
    acreate_session,
    adrive_session,
    ainterrupt_and_archive,
    attachable_session,
)
from .memory_audit import MemoryChange, changes_since, snapshot_stores
from .memory_stores import aresolve_memory_resources
from .outputs import acollect_session_outputs
from .pipeline import (
    FinishedSession,
    FollowUpTurn,
    OutputTarget,
    SessionAgent,
    SessionRequest,
    StartedSession,
    asend_follow_up,
)
from .results import OutputFile
from .roots import input_roots, output_roots
from .session_stream import StreamObserver
from .tool_calls import PendingToolCall, ToolAnswer
from .turn import ConfirmationPolicy, TurnRequest

Log = logging.Logger | logging.LoggerAdapter[Any]


class ClientSource(Protocol):
    """Makes SDK clients (``blocks.AnthropicCredentials`` is one)."""

    def get_async_client(self) -> anthropic.AsyncAnthropic:
        """A new async client."""


class DirectAgent(SessionAgent, Protocol):
    """What :class:`DirectSteps` reads of the agent (``blocks.ManagedAgent`` is one)."""

    @property
    def credentials(self) -> ClientSource:
        """Where clients come from."""

    @property
    def environment_id(self) -> str:
        """The environment sessions run in."""

    @property
    def log_verbosity(self) -> Verbosity:
        """``summary``, ``tools`` or ``full``."""

    def agent_reference(self) -> dict[str, Any]:
        """The pinned ``agent`` parameter of ``sessions.create``."""

    async def agithub_token(self) -> str | None:
        """The token the service clones the sessions' GitHub repositories with."""

    def console_url(self, session_id: str) -> str:
        """The session's console page."""


class DirectSteps:
    """Each pipeline step as plain SDK calls.

    Args:
        agent: The agent (``blocks.ManagedAgent``).
        log: Where to log.
        metadata: Session metadata to add to the request's (who started the session).
    """

    can_ask = False
    can_detach = False

    def __init__(self, agent: DirectAgent, log: Log, *, metadata: Mapping[str, str] | None = None) -> None:
        self.agent = agent
        self.log = log
        self.metadata = dict(metadata or {})

    def client(self) -> anthropic.AsyncAnthropic:
        """A new async client (use it as an async context manager)."""
        return self.agent.credentials.get_async_client()

    async def upload(self, files: Sequence[InputFile | str]) -> list[UploadedFile]:
        """Upload each input file (streamed from disk, size checked)."""
        inputs = check_input_files(list(files), input_roots(self.agent))
        async with self.client() as client:
            return [await self._upload_one(client, item) for item in inputs]

    async def _upload_one(self, client: anthropic.AsyncAnthropic, item: LocalInput) -> UploadedFile:
        sha256, size = await anyio.to_thread.run_sync(file_sha256, item.path)
        mime_type = mimetypes.guess_type(item.filename)[0] or "application/octet-stream"
        with item.path.open("rb") as fh:
            meta = await client.beta.files.upload(file=(item.filename, fh, mime_type))
        check_uploaded_size(item.path, size, meta.size_bytes)
        self.log.info("Uploaded %s (%d bytes) as %s", item.filename, size, meta.id)
        return UploadedFile(
            file_id=meta.id,
            filename=item.filename,
            sha256=sha256,
            size_bytes=size,
            mount_path=item.mount_path,
            reused=False,
        )

    async def memory_resources(self, attachments: Sequence[MemoryStoreAttachment]) -> list[dict[str, str]]:
        """Resolve the attachments (by id or name) into resource params."""
        async with self.client() as client:
            return await aresolve_memory_resources(client, attachments, log=self.log)

    async def snapshot_memory(self, store_ids: list[str]) -> dict[str, str | None]:
        """Each store's newest version id."""
        async with self.client() as client:
            return await snapshot_stores(client, store_ids)

    def session_metadata(self, request: SessionRequest) -> dict[str, str]:
        """The new session's metadata: the pinned version, the caller's, the request's."""
        return {AGENT_VERSION_KEY: str(self.agent.version), **self.metadata, **request.metadata}

    async def create(self, request: SessionRequest, resources: list[dict[str, Any]]) -> StartedSession:
        """Create the session once (a lost answer is resolved by a metadata token)."""
        async with self.client() as client:
            session = await acreate_session(
                client,
                agent_reference=self.agent.agent_reference(),
                environment_id=self.agent.environment_id,
                resources=resources,
                metadata=self.session_metadata(request),
                title=request.title,
                budget_usd=request.budget_usd,
                vault_ids=request.vault_ids or (),
                github_token=self.agent.agithub_token,
            )
        started = StartedSession(
            session_id=str(session.id), console_url=self.agent.console_url(str(session.id)), reattached=False
        )
        self.announce(started, follow_up=False)
        return started

    async def attach(self, session_id: str, *, follow_up: bool) -> StartedSession:
        """Check that the session can be taken over (live, this agent's)."""
        console_url = self.agent.console_url(session_id)
        async with self.client() as client:
            await attachable_session(
                client, session_id, agent_id=self.agent.agent_id, console_url=console_url, follow_up=follow_up
            )
        started = StartedSession(session_id=session_id, console_url=console_url, reattached=True)
        self.announce(started, follow_up=follow_up)
        return started

    def announce(self, started: StartedSession, *, follow_up: bool) -> None:
        """Say which session this run drives."""
        verb = "Continuing" if follow_up else "Re-attached to" if started.reattached else "Started"
        self.log.info("%s session %s: %s", verb, started.session_id, started.console_url)

    async def send_follow_up(self, session_id: str, events: list[EventParam]) -> FollowUpTurn:
        """Send the follow-up turn's events (the pipeline calls this once per run)."""
        async with self.client() as client:
            return await asend_follow_up(client, session_id, events)

    async def raise_budget(self, session_id: str, budget_usd: Decimal) -> None:
        """Set the session's budget (a repeat sets the same value)."""
        async with self.client() as client:
            await araise_budget(client, session_id, budget_usd)
        self.log.info("Budget of session %s set to %s USD", session_id, budget_usd)

    async def detach(
        self, session: StartedSession, kickoff: tuple[EventParam, ...], wait_seconds: float
    ) -> None:
        """Never called: only a deployment run can be released (the pipeline checks first)."""
        raise ConfigurationError("a run outside Prefect cannot detach from its session")

    async def stream(
        self, session: StartedSession, turn: TurnRequest, answers: Mapping[str, ToolAnswer]
    ) -> SessionRunReport:
        """Drive the turn; raise the typed error when it did not complete."""
        self.log.info("Streaming session %s (%s)", session.session_id, session.console_url)
        async with self.client() as client:
            report = await adrive_session(
                client,
                session.session_id,
                turn,
                console_url=session.console_url,
                answers=answers,
                observer=self.observer(session.session_id),
            )
        if report.end.kind != "awaiting_approval":
            await self.end_turn(report)
        return report

    def observer(self, session_id: str) -> StreamObserver:
        """What watches the stream: logs at the agent's verbosity."""
        return LoggingObserver(self.log, self.agent.log_verbosity, session_id)

    async def end_turn(self, report: SessionRunReport) -> None:
        """Log the turn's warnings; raise the typed error when it did not complete."""
        for warning in report.outcome.warnings:
            self.log.warning(warning)
        report.outcome.raise_for_failure()

    async def ask(
        self, calls: tuple[PendingToolCall, ...], policy: ConfirmationPolicy, session: StartedSession
    ) -> dict[str, ToolAnswer]:
        """Never reached: the pipeline refuses an asking policy when nobody can be asked."""
        raise NotImplementedError("only a flow run can ask a person")

    async def collect(
        self,
        session_id: str,
        destination: OutputTarget,
        *,
        exclude_file_ids: Sequence[str],
        turn_ended_at: datetime | None,
    ) -> list[OutputFile]:
        """Download the turn's output files (streamed, verified, atomic)."""
        async with self.client() as client:
            return await acollect_session_outputs(
                client,
                session_id,
                destination,
                exclude_file_ids=exclude_file_ids,
                turn_ended_at=turn_ended_at,
                logger=self.log,
                roots=output_roots(self.agent),
            )

    async def memory_changes(self, snapshot: dict[str, str | None]) -> list[MemoryChange]:
        """Every memory version written since the snapshot."""
        async with self.client() as client:
            return await changes_since(client, snapshot)

    async def archive(self, session_id: str) -> None:
        """Archive the session (its turn ended: a ``running`` status is only the post-idle race)."""
        async with self.client() as client:
            await ainterrupt_and_archive(client, session_id, logger=self.log, turn_ended=True)

    async def report(self, finished: FinishedSession) -> None:
        """Log the end of the turn."""
        result = finished.result
        self.log.info(
            "Session %s ended: %s (%s), %d output file(s), %d events",
            result.session_id,
            result.status,
            result.stop_reason,
            len(result.output_files),
            result.event_count,
        )
